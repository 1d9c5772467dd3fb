"""The page in a room works as in embedded mode: the worker publishes the per-turn latencies to the caller
(data packets), and the instructions panel changes the agent's instructions by RPC, so the next LLM request
carries them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from agent.localstack import LocalStack
from tests.browser import talking_page
from tests.conftest import ServeApp
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import ROOM_AGENT
from tests.livekit.test_browser_room import serve_page
from tests.speech import speak, write_wav
from tests.workers import WorkerProcess

PIRATE = "Answer like a pirate, in one short sentence."


async def test_latency_bar_and_instructions_in_a_room(
    livekit_stack: LocalStack,
    room_worker: WorkerProcess,
    room_llm: ScriptedLLMServer,
    serve_app: ServeApp,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    room_llm.reset(["Hello from the agent in the room. Nice to meet you."])
    gap = np.zeros(48000 * 14, np.int16)
    first, second = speak("Hi, can you hear me?", clips_dir), speak("How are you today?", clips_dir)
    mic = write_wav(
        clips_dir / "room-page-mic.wav", np.concatenate([gap[: 48000 * 3], first, gap, second, gap]), 48000
    )
    url = await serve_page(livekit_stack, serve_app, tmp_path, ROOM_AGENT)

    async with talking_page(url + "/?mode=room", mic) as (page, errors):
        await page.wait_for_function("window.voiceAgent.callState === 'connected'", timeout=30_000)
        await room_llm.wait_for_requests(1, timeout=90)
        bar = page.locator("#latency li.turn").first
        await bar.wait_for(timeout=60_000)
        numbers = await bar.locator(".stage .num").all_text_contents()
        assert numbers[-1].endswith(" ms") and numbers[2].endswith(" ms"), numbers  # total, LLM

        await page.locator("#instructions-text").fill(PIRATE)
        await page.get_by_role("button", name="Apply").click()
        await page.wait_for_function("window.voiceAgent.instructionsApplied === 1", timeout=15_000)
        applied_at = time.monotonic()

        await room_llm.wait_for_requests(2, timeout=90)
        later = [r for r in room_llm.requests if r.started_at > applied_at]
        assert later, "the second question came after the change"
        prompt = next(m["content"] for m in later[0].body["messages"] if m["role"] in ("system", "developer"))
        assert prompt == PIRATE
        assert not errors, errors
