"""Barge-in over real WebRTC: talking over the agent silences it, cancels the LLM stream and drops the rest of
the reply; a short noise burst with no words is a false interruption and the agent resumes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from livekit.plugins.parakeet.testing import speech_like

from agent.bench.caller import Caller
from agent.models import Models
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak

logger = logging.getLogger(__name__)

LONG_REPLY = " ".join(
    f"Here is sentence number {i} of a very long story that keeps on going." for i in range(1, 25)
)
QUIET_BOUND = 3.0  # generous: VAD needs min_interruption_duration (0.5 s) of speech, plus jitter buffers


async def ask_for_a_long_story(caller: Caller, clips_dir: Path) -> None:
    """Ask, then wait until the agent's (long) answer is audible at the caller."""
    await caller.silence(0.5)
    spoke_until = await caller.say(speak("Please tell me a long story.", clips_dir))
    await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 90, "the agent to start speaking")


async def test_talking_over_the_agent_stops_it(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = [LONG_REPLY, "Okay, I stopped."]
    llm_server.tokens_per_second = 6  # the reply is still streaming when the caller interrupts
    url = await start_agent()
    caller = await Caller.connect(url)
    try:
        await ask_for_a_long_story(caller, clips_dir)
        await caller.silence(1.0)

        stop = speak("Stop, stop. Wait a moment please.", clips_dir)
        barge_in_at = time.monotonic()
        await caller.say(stop)
        first = llm_server.requests[0]
        await caller.wait_for(lambda: first.finished.is_set(), 30, "the first LLM request to end")
        assert first.cancelled and not first.completed, "the LLM stream of the interrupted reply was closed"
        assert first.tokens_sent < len(LONG_REPLY.split())

        await caller.wait_for(
            lambda: caller.messages("transcript", role="agent", final=True, interrupted=True),
            30,
            "interrupted reply",
        )
        await caller.silence(QUIET_BOUND + 1.0)

        # After the bound, agent audio may only belong to a new reply (to the barge-in), never the old one.
        second_started = llm_server.requests[1].started_at if len(llm_server.requests) > 1 else float("inf")
        resumed = caller.first_audio_after(barge_in_at + QUIET_BOUND)
        assert resumed is None or resumed > second_started, "no audio of the interrupted reply after barge-in"
        spoken = caller.messages("transcript", role="agent", final=True, interrupted=True)[0].message["text"]
        assert spoken.strip() and LONG_REPLY.startswith(spoken.strip()[:40]) and len(spoken) < len(LONG_REPLY)
    finally:
        await caller.close()


async def test_a_burst_without_words_is_a_false_interruption(
    start_agent: StartServer,
    llm_server: ScriptedLLMServer,
    clips_dir: Path,
    models: Models,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm_server.replies = [LONG_REPLY]
    url = await start_agent(false_interruption_timeout=2.0)
    caller = await Caller.connect(url)
    try:
        await ask_for_a_long_story(caller, clips_dir)
        await caller.silence(1.5)

        # A cough or a door: voiced enough for the VAD, but a real ASR finds no words in it. The synthetic
        # model says "hello" for any sound, so from here on the STT engine's transcripts have no text.
        monkeypatch.setattr(models.stt.tokenizer, "ids_to_text", lambda ids: "")
        burst = (speech_like(1.0, sample_rate=48000, seed=7) * 32767).astype(np.int16)
        burst_at = time.monotonic()
        burst_end = await caller.say(burst)

        await caller.wait_for(lambda: caller.messages("false_interruption"), 30, "the false interruption")
        assert caller.messages("false_interruption")[0].message["resumed"] is True
        paused = [at for at, lvl in caller.audio if burst_at + 1.2 < at < burst_end + 1.5 and lvl >= 200]
        assert not paused, "the agent's audio paused while the caller made noise"
        await caller.wait_for(lambda: caller.first_audio_after(burst_end + 1.5), 30, "the agent to resume")

        assert len(llm_server.requests) == 1 and not llm_server.requests[0].cancelled, "the reply went on"
        assert not caller.messages("transcript", role="agent", final=True, interrupted=True)
    finally:
        await caller.close()
