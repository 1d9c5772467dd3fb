"""The whole pipeline over real WebRTC on loopback: an aiortc caller speaks into `POST /api/offer`, the agent
(Silero VAD → Parakeet → turn detector → Groq plugin → scripted server → Chatterbox) answers with audio."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from agent.bench.caller import Caller
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak

logger = logging.getLogger(__name__)

QUESTION = "Hello there. Could you tell me what the weather is like today?"


async def test_caller_hears_the_agent_answer(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = ["Sure, it is sunny and warm today. Anything else I can do for you?"]
    url = await start_agent()
    caller = await Caller.connect(url)
    try:
        await caller.silence(1.0)
        spoke_until = await caller.say(speak(QUESTION, clips_dir))
        await caller.silence(0.5)

        await llm_server.wait_for_requests(1, timeout=60)
        await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 90, "agent audio")
        await caller.wait_for(
            lambda: caller.messages("transcript", role="agent", final=True), 60, "final agent text"
        )

        # Preemptive generation may send a request per partial transcript; the last one holds the whole turn.
        user_finals = [e.message["text"] for e in caller.messages("transcript", role="user", final=True)]
        assert user_finals and all(t.strip() for t in user_finals), "the STT produced final user transcripts"
        answered = llm_server.requests[-1]
        assert " ".join(answered.user_texts[-1].split()) == " ".join(" ".join(user_finals).split())
        assert answered.body["stream"] is True

        voice_to_voice = caller.first_audio_after(spoke_until) - spoke_until  # type: ignore[operator]
        logger.info(
            "voice-to-voice (end of user speech -> first agent audio at the caller): %.0f ms; turn: %s",
            voice_to_voice * 1000,
            [e.message for e in caller.messages("metrics")],
        )
        loud = [lvl for at, lvl in caller.audio if at > spoke_until and lvl >= 200]
        assert len(loud) >= 5, "several 20 ms frames of agent speech arrived"

        states = [e.message["state"] for e in caller.messages("agent_state")]
        assert "thinking" in states and "speaking" in states
        agent_final = caller.messages("transcript", role="agent", final=True)[0].message
        assert agent_final["text"].startswith("Sure, it is sunny")
        assert not agent_final["interrupted"]
    finally:
        await caller.close()


async def test_two_callers_get_their_own_sessions(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = ["Yes, I can hear you."]
    url = await start_agent()
    callers = [await Caller.connect(url) for _ in range(2)]
    try:
        assert callers[0].session_id != callers[1].session_id
        clip = speak("Can you hear me?", clips_dir)
        spoke = [await c.say(np.concatenate([clip, np.zeros(24000, np.int16)])) for c in callers]
        await llm_server.wait_for_requests(2, timeout=90)
        for caller, t in zip(callers, spoke, strict=True):
            await caller.wait_for(lambda c=caller, t=t: c.first_audio_after(t - 0.5), 120, "agent audio")
        assert all(len(r.user_texts) == 1 for r in llm_server.requests), (
            "each session has its own chat history"
        )
    finally:
        for caller in callers:
            await caller.close()
