"""A real browser: headless Chromium with a fake microphone fed from a WAV loads the page (embedded mode),
presses Talk and hears the agent (WebAudio level on the page and inbound RTP bytes). Room mode against the
real livekit-server: tests/livekit/test_browser_room.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.browser import inbound_bytes, talking_page, wait_for_inbound_bytes
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak, write_wav


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
        assert await wait_for_inbound_bytes(page, baseline) > 5_000, "agent audio arrived over RTP"
        # the agent's words follow its voice (they are revealed as they are played)
        await page.locator("#transcript li.agent").first.wait_for(timeout=30_000)
        assert await page.locator("#agent-state").text_content() in ("speaking", "listening", "thinking")

        await page.get_by_role("button", name="Hang up").click()
        await page.get_by_role("button", name="Talk").wait_for(timeout=5_000)
        assert not errors, errors
