"""Worker mode over real room media: `voice-agent start` registers with the real livekit-server, a caller (the
rtc SDK) joins a room with a token that dispatches the agent and speaks espeak speech as its microphone; the
agent answers through RoomIO, publishes transcriptions and its state, stops when talked over, and ends its job
when the caller leaves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from livekit.plugins.parakeet.testing import speech_like

from agent.bench.room_caller import RoomCaller
from agent.localstack import LocalStack
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import ROOM_AGENT, caller_token
from tests.speech import speak
from tests.workers import WorkerProcess

LONG_REPLY = " ".join(
    f"Here is sentence number {i} of a very long story that keeps on going." for i in range(1, 25)
)
QUIET_BOUND = 3.0  # generous: VAD needs min_interruption_duration (0.5 s) of speech, plus jitter buffers


@pytest.fixture
async def caller(livekit_stack: LocalStack, room_worker: WorkerProcess) -> AsyncIterator[RoomCaller]:
    _, token = caller_token(livekit_stack, ROOM_AGENT)
    caller = await RoomCaller.join(livekit_stack.url, token)
    try:
        await caller.wait_for_agent(60)
        yield caller
    finally:
        await caller.close()


async def test_agent_answers_in_the_room(
    caller: RoomCaller, room_llm: ScriptedLLMServer, clips_dir: Path
) -> None:
    room_llm.reset(["Sure, it is sunny and warm today. Anything else I can do for you?"])
    await caller.silence(1.0)
    spoke_until = await caller.say(speak("Hello there. Could you tell me what the weather is like today?", clips_dir))
    await caller.silence(0.5)

    await room_llm.wait_for_requests(1, timeout=60)
    await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 90, "agent audio")
    await caller.wait_for(
        lambda: caller.messages("transcript", role="agent", final=True), 60, "the agent's final transcription"
    )
    loud = [lvl for at, lvl in caller.audio if at > spoke_until and lvl >= 200]
    assert len(loud) >= 5, "several frames of agent speech arrived"

    user_finals = [e.message["text"] for e in caller.messages("transcript", role="user", final=True)]
    assert user_finals and all(t.strip() for t in user_finals), "user transcriptions arrived in the room"
    answered = room_llm.requests[-1]
    assert " ".join(answered.user_texts[-1].split()) == " ".join(" ".join(user_finals).split())
    agent_text = caller.messages("transcript", role="agent", final=True)[0].message["text"]
    assert agent_text.startswith("Sure, it is sunny")
    # the agent listened, thought about the question, spoke, and went back to listening
    await caller.wait_for(
        lambda: [e for e in caller.messages("agent_state", state="listening") if e.at > spoke_until], 30,
        "the agent to listen again",
    )
    states = [e.message["state"] for e in caller.messages("agent_state")]
    assert "thinking" in states and "speaking" in states[states.index("thinking") :], states
    assert "listening" in states[: states.index("thinking")] and states[-1] == "listening", states


async def ask_for_a_long_story(caller: RoomCaller, clips_dir: Path) -> None:
    """Ask, then wait until the agent's (long) answer is audible at the caller."""
    await caller.silence(0.5)
    spoke_until = await caller.say(speak("Please tell me a long story.", clips_dir))
    await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 90, "the agent to start speaking")


async def test_talking_over_the_agent_stops_it(
    caller: RoomCaller, room_llm: ScriptedLLMServer, clips_dir: Path
) -> None:
    room_llm.reset([LONG_REPLY, "Okay, I stopped."], tokens_per_second=6)  # still streaming at barge-in
    await ask_for_a_long_story(caller, clips_dir)
    await caller.silence(1.0)

    barge_in_at = time.monotonic()
    await caller.say(speak("Stop, stop. Wait a moment please.", clips_dir))
    first = room_llm.requests[0]
    await caller.wait_for(lambda: first.finished.is_set(), 30, "the first LLM request to end")
    assert first.cancelled and not first.completed, "the LLM stream of the interrupted reply was closed"
    assert first.tokens_sent < len(LONG_REPLY.split())

    await caller.silence(QUIET_BOUND + 1.0)
    # After the bound, agent audio may only belong to a new reply (to the barge-in), never the old one.
    second_started = room_llm.requests[1].started_at if len(room_llm.requests) > 1 else float("inf")
    resumed = caller.first_audio_after(barge_in_at + QUIET_BOUND)
    assert resumed is None or resumed > second_started, "no audio of the interrupted reply after barge-in"
    # the agent's transcription of the interrupted reply ends where its speech stopped
    story = [e.message["text"] for e in caller.messages("transcript", role="agent") if "sentence" in e.message["text"]]
    assert story, caller.messages("transcript")
    spoken = story[-1]
    assert len(spoken) < len(LONG_REPLY) and LONG_REPLY.startswith(spoken.strip()), story


async def test_a_burst_without_words_is_a_false_interruption(
    caller: RoomCaller, room_llm: ScriptedLLMServer, clips_dir: Path
) -> None:
    room_llm.reset([LONG_REPLY])
    await ask_for_a_long_story(caller, clips_dir)
    await caller.silence(1.5)

    # A cough or a door: quiet and voiced enough for the VAD, no words for the STT (the synthetic model, like
    # a real one, hears nothing in sound this faint).
    burst = (speech_like(1.5, sample_rate=48000, seed=7, level=0.05) * 32767).astype(np.int16)
    burst_at = time.monotonic()
    burst_end = await caller.say(burst)

    await caller.wait_for(lambda: caller.first_audio_after(burst_end + 1.0), 30, "the agent to resume")
    assert len(room_llm.requests) == 1 and not room_llm.requests[0].cancelled, "the reply went on"
    # paused while the caller made noise (the agent listens), then resumed the same reply
    states = [e.message["state"] for e in caller.messages("agent_state") if e.at > burst_at]
    assert states[:2] == ["listening", "speaking"], states


async def test_leaving_ends_the_job_and_frees_its_capacity(
    livekit_stack: LocalStack, room_worker: WorkerProcess, room_llm: ScriptedLLMServer
) -> None:
    room_llm.reset(["Hello!"])
    _, token = caller_token(livekit_stack, ROOM_AGENT)
    caller = await RoomCaller.join(livekit_stack.url, token)
    try:
        await caller.wait_for_agent(60)
        assert await room_worker.active_jobs() >= 1
    finally:
        await caller.close()
    left = time.monotonic()
    for _ in range(300):  # bounded: 30 s
        if await room_worker.active_jobs() == 0:
            break
        await asyncio.sleep(0.1)
    assert await room_worker.active_jobs() == 0, "the job ended after the caller left"
    assert time.monotonic() - left < 15, "promptly, not after the room's departure timeout"
