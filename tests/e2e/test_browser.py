"""A real browser: headless Chromium with a fake microphone fed from a WAV loads the page, presses Talk and
hears the agent (WebAudio level on the page and inbound RTP bytes)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
from playwright.async_api import Page, async_playwright

from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak, write_wav


async def inbound_bytes(page: Page) -> int:
    return int(await page.evaluate("window.voiceAgent.transport.inboundAudioBytes()"))


async def test_browser_talks_to_the_agent(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (make test installs it)"
    llm_server.replies = ["Hello from the agent. Nice to meet you."]
    clip = speak("Hi, can you hear me?", clips_dir)
    silence = np.zeros(48000 * 2, np.int16)
    mic = write_wav(clips_dir / "browser-mic.wav", np.concatenate([silence, clip, silence, silence]), 48000)
    url = await start_agent()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=[
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
            ],
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url)
            await page.get_by_role("button", name="Talk").click()
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
        finally:
            await browser.close()
