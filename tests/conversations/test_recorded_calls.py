"""Calls over real WebRTC are saved as they happen: an embedded call shows up in `GET /api/conversations/{id}`
with both sides and their metrics, and the turns of a `voice-agent serve` killed mid-call survive the kill."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from agent.bench.agent_process import ServeProcess
from agent.bench.caller import Caller
from agent.conversations.database import Database, database_url
from tests.conftest import StartServer, make_settings
from tests.fakes.openai_server import ScriptedLLMServer
from tests.speech import speak

QUESTION = "Hello there. Could you tell me what the weather is like today?"
REPLY = "Sure, it is sunny and warm today. Anything else I can do for you?"


async def one_turn(caller: Caller, clips_dir: Path) -> None:
    """The caller asks; returns once the agent's whole reply has been transcribed to the page."""
    await caller.silence(1.0)
    await caller.say(speak(QUESTION, clips_dir))
    await caller.silence(0.5)
    await caller.wait_for(lambda: caller.messages("transcript", role="agent", final=True), 120, "the answer")


async def fetch(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.json()


async def test_an_embedded_call_is_saved_with_both_sides_and_metrics(
    start_agent: StartServer, llm_server: ScriptedLLMServer, clips_dir: Path, tmp_path: Path
) -> None:
    llm_server.replies = [REPLY]
    url = await start_agent(conversations_path=tmp_path / "calls.db")
    caller = await Caller.connect(url)
    try:
        await one_turn(caller, clips_dir)
    finally:
        await caller.close()

    async def ended() -> dict[str, Any]:
        while True:
            status, call = await fetch(f"{url}/api/conversations/{caller.session_id}")
            if status == 200 and call["ended_at"] is not None:
                return call
            await asyncio.sleep(0.2)

    call = await asyncio.wait_for(ended(), 30)
    assert call["transport"] == "embedded" and call["end_reason"]
    messages = [e for e in call["transcript"] if e["kind"] == "message"]
    user = [e for e in messages if e["role"] == "user"]
    agent = [e for e in messages if e["role"] == "agent"]
    assert user and all(e["text"].strip() for e in user), "the caller's words, as the STT heard them"
    assert agent and agent[-1]["text"].startswith("Sure, it is sunny") and not agent[-1]["interrupted"]
    assert {"stopped_speaking_at", "end_of_turn_delay"} <= user[-1]["metrics"].keys()
    assert {"llm_node_ttft", "tts_node_ttfb", "e2e_latency"} <= agent[-1]["metrics"].keys()
    assert [e["seq"] for e in call["transcript"]] == list(range(len(call["transcript"])))

    status, listing = await fetch(f"{url}/api/conversations")
    assert status == 200 and listing["conversations"][0]["id"] == caller.session_id
    assert listing["conversations"][0]["messages"] == len(messages)


async def test_turns_before_a_sigkill_are_kept(
    llm_server: ScriptedLLMServer, clips_dir: Path, tmp_path: Path
) -> None:
    llm_server.replies = [REPLY]
    path = tmp_path / "calls.db"
    server = ServeProcess(
        {
            "GROQ_API_KEY": "test-key",
            "VOICE_AGENT_LLM_BASE_URL": llm_server.base_url,
            "VOICE_AGENT_STT_MODEL": "synthetic-tiny",
            "VOICE_AGENT_TTS_MODEL": "synthetic-tiny",
            "VOICE_AGENT_DEVICE": "cpu",
            "VOICE_AGENT_CONVERSATIONS_PATH": str(path),
        }
    )
    await server.start(timeout=180)
    try:
        caller = await Caller.connect(server.url)
        try:
            await one_turn(caller, clips_dir)
            await caller.silence(1.0)  # the call goes on: the kill comes mid-call
            os.kill(server.pid, signal.SIGKILL)
        finally:
            await caller.close()
    finally:
        server.stop()

    database = Database(database_url(make_settings(conversations_path=path)))
    try:
        call = await asyncio.to_thread(database.get_call, caller.session_id)
    finally:
        database.close()
    assert call is not None and call["ended_at"] is None, "killed before the call could end"
    roles = [e["role"] for e in call["transcript"] if e["kind"] == "message"]
    assert "user" in roles and roles[-1] == "agent"
    assert call["transcript"][-1]["text"].startswith("Sure, it is sunny")
