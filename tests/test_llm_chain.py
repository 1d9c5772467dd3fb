"""The LLM chain against a local OpenAI-compatible server through the real Groq and OpenAI plugins: each fault
of a model (HTTP 500, 429, no first token, a stall mid-answer, an endpoint that is down) moves the turn to
the next model, or ends it, as the module promises."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from livekit.agents import APIError, llm

from agent.llm_chain import LLMChain, build_llm
from agent.settings import Settings
from tests.fakes.openai_server import ScriptedLLMServer

REPLY = "Here is the answer you asked for."


@pytest.fixture
async def server() -> AsyncIterator[ScriptedLLMServer]:
    server = await ScriptedLLMServer([REPLY], ttft=0.02, tokens_per_second=200).start()
    yield server
    await server.aclose()


def chain_for(base_url: str, *, fallback_url: str | None = None, **overrides: object) -> LLMChain:
    options: dict[str, object] = {
        "llm_base_url": base_url,
        "llm_model": "primary",
        "llm_fallback_models": ["secondary"],
        "llm_fallback_url": fallback_url,
        "llm_fallback_url_model": "elsewhere",
        "llm_first_token_timeout": 1.0,
        "llm_stall_timeout": 1.0,
    }
    settings = Settings(_env_file=None, **(options | overrides))  # type: ignore[call-arg, arg-type]
    return build_llm(settings)


async def answer(chain: llm.LLM) -> str:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="What is the answer?")
    parts: list[str] = []
    async with chain.chat(chat_ctx=ctx) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                parts.append(chunk.delta.content)
    return "".join(parts)


def models_asked(server: ScriptedLLMServer) -> list[str]:
    return [r.body["model"] for r in server.requests]


async def test_the_first_model_answers_when_it_can(server: ScriptedLLMServer) -> None:
    chain = chain_for(server.base_url)
    try:
        assert await answer(chain) == REPLY
        assert models_asked(server) == ["primary"]
    finally:
        await chain.aclose()


@pytest.mark.parametrize("fault", ["500", "429", "hang"])
async def test_a_failing_first_model_hands_the_turn_to_the_next(
    server: ScriptedLLMServer, fault: str
) -> None:
    server.faults["primary"] = fault  # type: ignore[assignment]
    chain = chain_for(server.base_url)
    try:
        assert await answer(chain) == REPLY
        assert server.faulted[0] == ("primary", fault)
        assert "secondary" in models_asked(server)
    finally:
        await chain.aclose()


async def test_the_openai_compatible_url_is_the_last_resort(server: ScriptedLLMServer) -> None:
    other = await ScriptedLLMServer(["From the other endpoint."], ttft=0.02).start()
    server.faults |= {"primary": "500", "secondary": "429"}
    chain = chain_for(server.base_url, fallback_url=other.base_url)
    try:
        assert await answer(chain) == "From the other endpoint."
        assert {m for m, _ in server.faulted} == {"primary", "secondary"}
        assert models_asked(other) == ["elsewhere"]
    finally:
        await chain.aclose()
        await other.aclose()


async def test_an_endpoint_that_is_down_is_skipped(server: ScriptedLLMServer) -> None:
    down = await ScriptedLLMServer([REPLY]).start()
    down_url = down.base_url
    await down.aclose()  # nothing listens on its port any more: connection refused
    chain = chain_for(down_url, fallback_url=server.base_url, llm_fallback_models=[])
    try:
        assert await answer(chain) == REPLY
        assert models_asked(server) == ["elsewhere"]
    finally:
        await chain.aclose()


async def test_a_stall_mid_answer_ends_the_turn_with_what_was_said(server: ScriptedLLMServer) -> None:
    """Once words have been streamed (and spoken), another model's answer would repeat or contradict them."""
    server.faults["primary"] = "stall"
    chain = chain_for(server.base_url)
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content="What is the answer?")
    parts: list[str] = []
    try:
        with pytest.raises(APIError):
            async with chain.chat(chat_ctx=ctx) as stream:
                async for chunk in stream:
                    if chunk.delta and chunk.delta.content:
                        parts.append(chunk.delta.content)
        assert "".join(parts) == "Here is "
        assert models_asked(server) == ["primary"]
    finally:
        await chain.aclose()


async def test_every_model_failing_is_one_error_and_the_chain_recovers(server: ScriptedLLMServer) -> None:
    server.faults |= {"primary": "500", "secondary": "500"}
    chain = chain_for(server.base_url)
    try:
        with pytest.raises(APIError):
            await answer(chain)
        server.faults.clear()
        assert await answer(chain) == REPLY
    finally:
        await chain.aclose()
