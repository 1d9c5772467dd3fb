"""What callers say, and what the agent answers them, stays out of the logs at INFO and above (DEBUG may have
it): a real call over WebRTC with the whole pipeline, every log record of the process captured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.bench.caller import Caller
from tests.conftest import StartServer
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak

REPLY = "Your parcel number papaya-4711 ships tomorrow morning."


async def test_call_content_is_not_logged_at_info(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    llm_server.replies = [REPLY]
    url = await start_agent()
    caller = await Caller.connect(url)
    try:
        await caller.silence(0.5)
        await caller.say(speak("Hello, where is my parcel?", clips_dir))
        await caller.silence(0.5)
        await caller.wait_for(
            lambda: caller.messages("transcript", role="agent", final=True), 120, "the agent's reply"
        )
        heard = [e.message["text"] for e in caller.messages("transcript", role="user", final=True)]
    finally:
        await caller.close()

    assert heard and llm_server.requests, "the caller was transcribed and the LLM answered"
    assert caller.messages("transcript", role="agent", final=True)[0].message["text"] == REPLY
    visible = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert visible, "the call did log (session started/closed)"
    secrets = ["papaya-4711", *(t.strip() for t in heard if len(t.strip()) >= 6)]
    for secret in secrets:
        leaked = [m for m in visible if secret in m]
        assert not leaked, f"{secret!r} logged at INFO or above: {leaked[:3]}"
