"""A failing turn never kills the session: the LLM endpoint fails every attempt of the first turn and the
caller hears the apology, then the next turn is answered normally; a TTS failure in the middle of a reply ends
that reply only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from livekit.plugins import chatterbox

from agent.bench.caller import Caller
from agent.embedded import create_app
from agent.models import Models
from tests.conftest import ServeApp, StartServer, make_settings
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak


async def test_session_survives_a_failed_turn(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path
) -> None:
    llm_server.replies = ["I am back, sorry about that."]
    llm_server.failures = 1_000  # every attempt of the first turn fails (the plugin retries)
    url = await start_agent()
    caller = await Caller.connect(url)
    try:
        await caller.silence(0.5)
        spoke_until = await caller.say(speak("Are you there?", clips_dir))
        await caller.wait_for(lambda: caller.messages("error"), 60, "an error event on the data channel")
        assert llm_server.failed >= 1 and not llm_server.requests
        error = caller.messages("error")[0].message
        assert error["source"] == "llm" and "500" not in error["message"], "no exception text for the client"
        apology = make_settings().llm_apology
        await caller.wait_for(
            lambda: caller.messages("transcript", role="agent", final=True, text=apology),
            60,
            f"the apology (agent transcripts: {caller.messages('transcript', role='agent')})",
        )
        assert caller.first_audio_after(spoke_until) is not None, "the apology was spoken"

        llm_server.failures = 0
        spoke_until = await caller.say(speak("Hello again, are you there now?", clips_dir))
        await caller.wait_for(
            lambda: caller.first_audio_after(spoke_until), 90, "the agent to answer the next turn"
        )
        assert llm_server.requests, "the second turn reached the LLM"
        await caller.wait_for(
            lambda: caller.messages(
                "transcript", role="agent", final=True, text="I am back, sorry about that."
            ),
            60,
            "the reply text",
        )
    finally:
        await caller.close()


class FailsSecondChunk(chatterbox.SynthesisSteps):
    """The real synthesis steps, except that the second chunk of audio of the first reply fails to vocode."""

    def __init__(self, model: chatterbox.LoadedModel) -> None:
        super().__init__(model)
        self.chunks = 0

    def audio(self, vocoder: Any, mels: Any, *, final: bool, watermark: bool) -> bytes:
        self.chunks += 1
        if self.chunks == 2:
            raise RuntimeError("injected vocoder failure")
        return super().audio(vocoder, mels, final=final, watermark=watermark)


async def test_a_tts_failure_mid_reply_ends_that_turn_only(
    models: Models, llm_server: ScriptedLLMServer, serve_app: ServeApp, clips_dir: Path
) -> None:
    llm_server.reset(["This first reply is long enough to need several chunks of speech.", "Still here."])
    steps = FailsSecondChunk(models.tts.model)
    tts = await asyncio.to_thread(chatterbox.ChatterboxEngine, models.tts.model, steps=steps)
    try:
        settings = make_settings(llm_base_url=llm_server.base_url)
        url = await serve_app(create_app(settings, Models(vad=models.vad, stt=models.stt, tts=tts)))
        caller = await Caller.connect(url)
        try:
            await caller.silence(0.5)
            spoke_until = await caller.say(speak("Tell me something.", clips_dir))
            await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 90, "the first chunk")
            await caller.wait_for(lambda: steps.chunks >= 2, 60, "the failing chunk")
            await caller.wait_for(
                lambda: (
                    caller.messages("agent_state", state="listening") and caller.events[-1].at > spoke_until
                ),
                60,
                "the agent to listen again",
            )
            spoke_again = await caller.say(speak("Are you still there?", clips_dir))
            await caller.wait_for(lambda: caller.first_audio_after(spoke_again), 90, "the next answer")
            assert len(llm_server.requests) == 2, "the second turn was answered"
        finally:
            await caller.close()
    finally:
        await asyncio.to_thread(tts.close)
