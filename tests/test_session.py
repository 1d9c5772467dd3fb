"""One pipeline assembly: every transport builds its session with `agent.session.build_session`."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from pathlib import Path

from livekit.plugins import chatterbox

from agent.call_info import CallInfo
from agent.models import Models
from agent.session import build_agent, build_session
from tests.conftest import make_settings
from tests.fakes.openai_server import ScriptedLLMServer

AGENT = Path(__file__).resolve().parents[1] / "agent"


def calls_in(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_only_session_module_constructs_the_pipeline() -> None:
    """llm_chain.py builds the session's LLM (the model and its fallbacks), for session.py alone."""
    pipeline_parts = {"AgentSession", "STT", "TTS", "LLM"}
    for path in AGENT.rglob("*.py"):
        if path.name in ("session.py", "llm_chain.py"):
            continue
        assert not pipeline_parts & calls_in(path), f"{path.relative_to(AGENT)} builds pipeline parts itself"
        assert "build_llm" not in calls_in(path), f"{path.relative_to(AGENT)} builds an LLM of its own"


def test_both_transports_use_build_session() -> None:
    for transport in ("worker.py", "embedded/peer.py"):
        assert "build_session" in calls_in(AGENT / transport), transport


def test_tts_settings_reach_the_tts(models: Models) -> None:
    settings = make_settings(
        tts_chunk_tokens=(10, 30),
        tts_normalize_text=False,
        tts_watermark=False,
        tts_temperature=0.6,
        first_fragment_min_words=2,
    )
    tts = build_session(settings, models, CallInfo(session_id="test", transport="embedded")).tts
    assert isinstance(tts, chatterbox.TTS)
    opts = tts._opts
    assert opts.chunk_tokens == (10, 30)
    assert opts.normalize_text is False
    assert opts.watermark is False
    assert opts.temperature == 0.6
    assert opts.first_fragment_min_words == 2


async def test_a_session_outlives_ten_turns_no_llm_answers(
    models: Models, llm_server: ScriptedLLMServer
) -> None:
    """Every model fails ten turns in a row (livekit-agents alone closes a session after three): each turn
    gets the spoken apology, and the eleventh, with the LLM back, is answered."""
    settings = make_settings(llm_base_url=llm_server.base_url)
    llm_server.failures = 10**6
    session = build_session(settings, models, CallInfo(session_id="test", transport="embedded"))
    spoken: list[str] = []
    session.on("speech_created", lambda ev: spoken.append(ev.source))
    await session.start(agent=build_agent(settings))
    try:
        for turn in range(10):
            handle = session.generate_reply(user_input=f"Question number {turn}?")
            await asyncio.wait_for(handle.wait_for_playout(), 60)
            await wait_until(lambda t=turn: spoken.count("say") == t + 1, 30, f"the apology of turn {turn}")
        assert llm_server.failed >= 10 and not llm_server.requests
        llm_server.failures = 0
        result = await asyncio.wait_for(session.run(user_input="Are you back?"), 60)
        result.expect.contains_message(role="assistant")
        assert llm_server.requests, "the LLM answered the eleventh turn"
    finally:
        await session.aclose()


async def test_the_llm_sees_a_bounded_history(models: Models, llm_server: ScriptedLLMServer) -> None:
    settings = make_settings(llm_base_url=llm_server.base_url, max_history_items=6)
    llm_server.reset(["Noted."])
    session = build_session(settings, models, CallInfo(session_id="test", transport="embedded"))
    agent = build_agent(settings)
    await session.start(agent=agent)
    try:
        for turn in range(8):
            await asyncio.wait_for(session.run(user_input=f"Remember the number {turn}."), 60)
        last = llm_server.requests[-1].body["messages"]
        assert last[0]["role"] == "system", "the instructions are kept"
        assert len(last) <= 1 + 6, [m["role"] for m in last]
        assert "Remember the number 7." in llm_server.requests[-1].user_texts
        assert "Remember the number 0." not in llm_server.requests[-1].user_texts
        # trimmed before each answer: at most the limit, then that turn's question and answer
        assert len(agent.chat_ctx.items) <= 1 + 6 + 2, "the agent keeps no more than it sends"
    finally:
        await session.aclose()


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
