"""A real browser: headless Chromium with a fake microphone fed from a WAV loads the page, presses Talk and
hears the agent (WebAudio level on the page and inbound RTP bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from livekit import api
from playwright.async_api import Page, async_playwright

from agent.embedded import create_app
from agent.embedded.app import WEB_DIR
from agent.settings import Settings
from tests.conftest import ServeApp, StartServer
from tests.fakes.livekit_server import API_KEY, API_SECRET, FakeLiveKitServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak, write_wav

ROOT = Path(__file__).resolve().parents[2]
# installed by `make test` (npm); the page imports it as an ES module
LIVEKIT_CLIENT = ROOT / ".venv/npm/node_modules/livekit-client/dist/livekit-client.esm.mjs"


def chromium_args(mic: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop",  # play once, then silence
        "--autoplay-policy=no-user-gesture-required",
    ]


def system_chromium() -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (make test installs it)"
    return chromium


@contextlib.asynccontextmanager
async def talking_page(url: str, mic: Path) -> AsyncIterator[tuple[Page, list[str]]]:
    """Headless Chromium with `mic` as its microphone opens `url` and presses Talk; yields the page and the
    page errors seen so far."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=system_chromium(), args=chromium_args(mic))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url)
            await page.get_by_role("button", name="Talk").click()
            yield page, errors
        finally:
            await browser.close()


async def inbound_bytes(page: Page) -> int:
    return int(await page.evaluate("window.voiceAgent.transport.inboundAudioBytes()"))


async def test_browser_talks_to_the_agent(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = ["Hello from the agent. Nice to meet you."]
    clip = speak("Hi, can you hear me?", clips_dir)
    silence = np.zeros(48000 * 2, np.int16)
    mic = write_wav(clips_dir / "browser-mic.wav", np.concatenate([silence, clip, silence, silence]), 48000)
    url = await start_agent()

    async with talking_page(url, mic) as (page, errors):
        await page.wait_for_function("window.voiceAgent.connected", timeout=30_000)
        await page.get_by_role("button", name="Hang up").wait_for(timeout=5_000)
        baseline = await inbound_bytes(page)

        await llm_server.wait_for_requests(1, timeout=90)
        await page.wait_for_function("window.voiceAgent.agentLevelMax > 0.02", timeout=120_000)
        for _ in range(100):  # bounded: speech frames are far bigger than the idle track's silence frames
            if await inbound_bytes(page) - baseline > 5_000:
                break
            await asyncio.sleep(0.1)
        assert await inbound_bytes(page) - baseline > 5_000, "agent audio arrived over RTP"
        assert await page.locator("#transcript li.agent").count() >= 1
        assert await page.locator("#agent-state").text_content() in ("speaking", "listening", "thinking")

        await page.get_by_role("button", name="Hang up").click()
        await page.get_by_role("button", name="Talk").wait_for(timeout=5_000)
        assert not errors, errors


async def test_browser_joins_a_livekit_room_with_a_token(
    clips_dir: Path, tmp_path: Path, serve_app: ServeApp
) -> None:
    """Room mode: the page gets a token from `voice-agent web`, loads livekit-client and connects to the
    server named in the token response with that token (a fake server: the WebRTC part is not emulated)."""
    assert LIVEKIT_CLIENT.is_file(), "livekit-client is missing: run `make test` (it installs it with npm)"
    web_dir = tmp_path / "web"
    shutil.copytree(WEB_DIR, web_dir)
    shutil.copy(LIVEKIT_CLIENT, web_dir / "livekit-client.esm.mjs")
    livekit = await FakeLiveKitServer(rtc_v1=True).start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        livekit_url=livekit.url,
        livekit_api_key=API_KEY,
        livekit_api_secret=API_SECRET,
        agent_name="browser-agent",
        livekit_client_url="/static/livekit-client.esm.mjs",
    )
    url = await serve_app(create_app(settings, None, web_dir=web_dir))
    mic = write_wav(clips_dir / "room-mic.wav", np.zeros(48000, np.int16), 48000)
    try:
        async with talking_page(url, mic) as (page, errors):
            for _ in range(300):  # bounded: up to 30 s for the room connection attempt
                if livekit.rtc_tokens:
                    break
                await asyncio.sleep(0.1)
            assert livekit.rtc_tokens, "the page never connected to the LiveKit server"
            room = await page.evaluate("window.voiceAgent.room")
            claims = api.TokenVerifier(API_KEY, API_SECRET).verify(livekit.rtc_tokens[0])
            assert claims.video.room == room and claims.video.room_join
            assert [a.agent_name for a in claims.room_config.agents] == ["browser-agent"]
            assert not errors, errors
    finally:
        await livekit.aclose()
