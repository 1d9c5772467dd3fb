"""A failing turn never kills the session: the LLM endpoint fails every attempt of the first turn, the caller
is told, and the next turn is answered normally."""

from __future__ import annotations

from pathlib import Path

from agent.bench.caller import Caller
from tests.conftest import StartServer
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
        await caller.say(speak("Are you there?", clips_dir))
        await caller.wait_for(lambda: caller.messages("error"), 60, "an error event on the data channel")
        assert llm_server.failed >= 1 and not llm_server.requests

        llm_server.failures = 0
        spoke_until = await caller.say(speak("Hello again, are you there now?", clips_dir))
        await caller.wait_for(
            lambda: caller.first_audio_after(spoke_until), 90, "the agent to answer the next turn"
        )
        assert llm_server.requests, "the second turn reached the LLM"
        await caller.wait_for(
            lambda: caller.messages("transcript", role="agent", final=True), 60, "the reply text"
        )
    finally:
        await caller.close()
