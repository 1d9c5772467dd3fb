"""The page in a room, in a real browser: headless Chromium with a fake microphone opens the page served by
`voice-agent web` (the same app: no models, room tokens only), gets a token, joins the real livekit-server with
livekit-client, and hears the agent; the transcript appears on the page. With no agent to take the room, the
page says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from agent.embedded import create_app
from agent.embedded.app import WEB_DIR
from agent.localstack import LocalStack
from tests.browser import LIVEKIT_CLIENT, inbound_bytes, talking_page, wait_for_inbound_bytes
from tests.conftest import ServeApp
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import ROOM_AGENT, stack_settings
from tests.speech import speak, write_wav
from tests.workers import WorkerProcess


async def serve_page(stack: LocalStack, serve_app: ServeApp, tmp_path: Path, agent_name: str, **kw: float) -> str:
    """`voice-agent web`'s app for `agent_name`, with livekit-client served locally (no CDN in tests)."""
    assert LIVEKIT_CLIENT.is_file(), "livekit-client is missing: run `make test` (it installs it with npm)"
    web_dir = tmp_path / "web"
    shutil.copytree(WEB_DIR, web_dir)
    shutil.copy(LIVEKIT_CLIENT, web_dir / "livekit-client.esm.mjs")
    settings = stack_settings(
        stack, agent_name=agent_name, livekit_client_url="/static/livekit-client.esm.mjs", **kw
    )
    return await serve_app(create_app(settings, None, web_dir=web_dir))


async def test_page_in_a_room_hears_the_agent(
    livekit_stack: LocalStack,
    room_worker: WorkerProcess,
    room_llm: ScriptedLLMServer,
    serve_app: ServeApp,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    room_llm.reset(["Hello from the agent in the room. Nice to meet you."])
    clip = speak("Hi, can you hear me?", clips_dir)
    silence = np.zeros(48000 * 3, np.int16)
    mic = write_wav(clips_dir / "room-mic.wav", np.concatenate([silence, clip, silence, silence]), 48000)
    url = await serve_page(livekit_stack, serve_app, tmp_path, ROOM_AGENT)

    async with talking_page(url + "/?mode=room", mic) as (page, errors):
        await page.wait_for_function("window.voiceAgent.connected", timeout=30_000)
        baseline = await inbound_bytes(page)
        await room_llm.wait_for_requests(1, timeout=90)
        await page.wait_for_function("window.voiceAgent.agentLevelMax > 0.02", timeout=120_000)
        assert await wait_for_inbound_bytes(page, baseline) > 5_000, "agent audio arrived over RTP"
        # the agent's words are revealed in step with its speech; the finished line holds the reply
        agent_line = page.locator("#transcript li.agent:not(.partial) .text").first
        await agent_line.wait_for(timeout=60_000)
        assert (await agent_line.text_content() or "").startswith("Hello from the agent"), (
            await page.locator("#transcript").inner_text()
        )
        await page.locator("#transcript li.user").first.wait_for(timeout=30_000)
        room = await page.evaluate("window.voiceAgent.room")
        assert room.startswith("call-")
        assert not errors, errors


async def test_page_says_when_no_agent_takes_the_room(
    livekit_stack: LocalStack, serve_app: ServeApp, clips_dir: Path, tmp_path: Path
) -> None:
    url = await serve_page(livekit_stack, serve_app, tmp_path, "nobody-runs-this-agent", agent_join_timeout=2.0)
    mic = write_wav(clips_dir / "quiet-mic.wav", np.zeros(48000, np.int16), 48000)
    async with talking_page(url + "/?mode=room", mic) as (page, errors):
        error = page.locator("#error")
        await error.wait_for(state="visible", timeout=30_000)
        assert "every agent is busy" in (await error.text_content() or "")
        await page.get_by_role("button", name="Talk").wait_for(timeout=5_000)  # back to idle
        assert not errors, errors
