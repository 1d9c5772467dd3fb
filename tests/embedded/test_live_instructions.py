"""The server side of the page's instructions panel, without a browser: data-channel messages change the
instructions of a running (text-only) AgentSession, whose next LLM request carries them; bad messages get
an error reply and the session goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit.agents import AgentSession
from livekit.plugins import groq

from agent.live_instructions import ChannelRequests
from agent.session import build_agent
from tests.conftest import make_settings
from tests.fakes.openai_server import ScriptedLLMServer


class Page:
    """The replies the agent sends back, as the page would receive them."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        json.dumps(message)  # what goes on the channel must be JSON
        self.replies.append(message)
        self._arrived.set()

    async def next_reply(self) -> dict[str, Any]:
        await asyncio.wait_for(self._arrived.wait(), 10)
        self._arrived.clear()
        return self.replies.pop(0)


@pytest.fixture
async def session(llm_server: ScriptedLLMServer) -> AsyncIterator[AgentSession]:
    async with (
        groq.LLM(base_url=llm_server.base_url, api_key="test") as llm,
        AgentSession(llm=llm) as session,
    ):
        await session.start(build_agent(make_settings()))
        yield session


def system_prompt(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] in ("system", "developer"))


async def ask(
    requests: ChannelRequests, session: AgentSession, page: Page, message: object
) -> dict[str, Any]:
    requests.receive(json.dumps(message), session)
    return await page.next_reply()


async def test_new_instructions_reach_the_next_llm_request(
    session: AgentSession, llm_server: ScriptedLLMServer
) -> None:
    page = Page()
    requests = ChannelRequests(make_settings(), page.send)
    await session.run(user_input="Hello")
    assert system_prompt(llm_server.requests[0].body) == make_settings().system_prompt

    reply = await ask(
        requests, session, page, {"type": "instructions", "id": 7, "text": "  Talk like a pirate. "}
    )
    assert reply == {"type": "instructions", "id": 7, "ok": True}
    await session.run(user_input="Hello again")
    assert system_prompt(llm_server.requests[1].body) == "Talk like a pirate."
    assert "Hello" in llm_server.requests[1].user_texts  # the chat so far is kept


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "instructions", "id": 1, "text": "   "}, '"text" must be a non-empty string'),
        ({"type": "instructions", "id": 1, "text": 42}, '"text" must be a non-empty string'),
        ({"type": "instructions", "id": 1}, '"text" must be a non-empty string'),
        ({"type": "instructions", "id": 1, "text": "x" * 101}, "at most 100 are allowed"),
    ],
)
async def test_bad_instructions_are_refused_with_the_reason(
    session: AgentSession, llm_server: ScriptedLLMServer, message: dict[str, Any], error: str
) -> None:
    page = Page()
    requests = ChannelRequests(make_settings(instructions_max_chars=100), page.send)
    reply = await ask(requests, session, page, message)
    assert reply["type"] == "instructions" and reply["id"] == 1 and reply["ok"] is False
    assert error in reply["error"]
    await session.run(user_input="Hello")
    assert system_prompt(llm_server.requests[0].body) == make_settings().system_prompt


async def test_malformed_messages_get_an_error_and_the_session_goes_on(
    session: AgentSession, llm_server: ScriptedLLMServer
) -> None:
    page = Page()
    requests = ChannelRequests(make_settings(), page.send)
    for data, error in [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"type": "shout"}), "unknown message type 'shout'"),
        ("x" * 20_000, "too large"),
        (b"\xff\xfe", "not valid JSON"),
    ]:
        requests.receive(data, session)
        reply = await page.next_reply()
        assert reply["type"] == "error" and reply["source"] == "channel" and error in reply["message"], reply
    result = await session.run(user_input="Are you still there?")
    result.expect.next_event().is_message(role="assistant")


async def test_the_setting_turns_live_instructions_off(session: AgentSession) -> None:
    page = Page()
    requests = ChannelRequests(make_settings(live_instructions=False), page.send)
    reply = await ask(requests, session, page, {"type": "instructions", "text": "Be rude."})
    assert reply["ok"] is False and "turned off" in reply["error"]
    assert reply["id"] is None


async def test_a_call_that_has_not_started_cannot_change_yet() -> None:
    page = Page()
    requests = ChannelRequests(make_settings(), page.send)
    requests.receive(json.dumps({"type": "instructions", "id": "a", "text": "Hi"}), None)
    reply = await page.next_reply()
    assert reply == {"type": "instructions", "id": "a", "ok": False, "error": "the call has not started yet"}
