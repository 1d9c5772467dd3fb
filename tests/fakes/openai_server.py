"""A local OpenAI-compatible chat-completions server that stands in for Groq in tests.

It streams scripted replies as SSE chunks with a configurable time to first token and token rate, records
every request, and notes whether the client hung up before the reply was complete (barge-in cancels the
LLM stream by closing the HTTP connection)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from agent.bench.scripted_llm import chunk, sse, tokens
from tests.fakes.loopback import serve


@dataclass(frozen=True)
class ToolCall:
    """A scripted reply that calls one of the tools the request offers."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Reply = str | ToolCall

Fault = Literal["500", "429", "hang", "stall"]
"""How a model of the scripted server fails: an HTTP error, no token at all after the headers (hang), or
two tokens of the reply and then nothing (stall)."""


@dataclass
class RecordedRequest:
    body: dict[str, Any]
    reply: Reply
    started_at: float
    tokens_sent: int = 0
    completed: bool = False
    cancelled: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools", [])]

    @property
    def user_texts(self) -> list[str]:
        return [_text(m.get("content")) for m in self.body.get("messages", []) if m.get("role") == "user"]


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


class ScriptedLLMServer:
    """Replies are taken in order from `replies` (the last one repeats once they run out); the first
    `failures` requests are answered with HTTP 500 instead, and requests for a model named in `faults` fail
    that way (every time, until removed)."""

    def __init__(
        self, replies: list[Reply], *, ttft: float = 0.05, tokens_per_second: float = 50.0, failures: int = 0
    ) -> None:
        self.replies = list(replies)
        self.failures = failures
        self.failed = 0
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.requests: list[RecordedRequest] = []
        self.faults: dict[str, Fault] = {}
        self.faulted: list[tuple[str, Fault]] = []
        """(model, fault) of every request answered with a fault, in order"""
        self._runner: web.AppRunner | None = None
        self.port = 0

    def reset(self, replies: list[Reply], *, tokens_per_second: float = 50.0) -> None:
        """A fresh script for the next test of a server shared by several (e.g. with one worker process)."""
        self.replies = list(replies)
        self.tokens_per_second = tokens_per_second
        self.requests.clear()
        self.faults.clear()
        self.faulted.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> ScriptedLLMServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner, self.port = await serve(app, handler_cancellation=True)
        return self

    async def aclose(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def wait_for_requests(self, n: int, timeout: float) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} LLM requests, got {len(self.requests)}")
            await asyncio.sleep(0.02)
        return self.requests

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fault = self.faults.get(body.get("model", ""))
        if self.failed < self.failures:
            self.failed += 1
            fault = "500"
        if fault is not None:
            self.faulted.append((body.get("model", ""), fault))
        if fault in ("500", "429"):
            status = int(fault)
            message = "rate limit reached" if status == 429 else "scripted failure"
            return web.json_response({"error": {"message": message, "type": "server_error"}}, status=status)
        reply = self.replies[min(len(self.requests), len(self.replies) - 1)]
        rec = RecordedRequest(body=body, reply=reply, started_at=time.monotonic())
        self.requests.append(rec)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            if fault == "hang":
                await asyncio.sleep(3600)  # until the client gives up and hangs up
            await asyncio.sleep(self.ttft)
            if isinstance(reply, ToolCall):
                call = {"index": 0, "id": f"call_{len(self.requests)}", "type": "function",
                        "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)}}
                await resp.write(sse(chunk(body, {"role": "assistant", "tool_calls": [call]})))
                await resp.write(sse(chunk(body, {}, finish_reason="tool_calls")))
            for token in tokens(reply if isinstance(reply, str) else ""):
                await resp.write(sse(chunk(body, {"role": "assistant", "content": token})))
                rec.tokens_sent += 1
                if fault == "stall" and rec.tokens_sent == 2:
                    await asyncio.sleep(3600)
                await asyncio.sleep(1.0 / self.tokens_per_second)
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": rec.tokens_sent,
                "total_tokens": 10 + rec.tokens_sent,
            }
            await resp.write(sse(chunk(body, None, usage=usage)))
            await resp.write(b"data: [DONE]\n\n")
            rec.completed = True
        except (asyncio.CancelledError, ConnectionResetError):
            rec.cancelled = True
            raise
        finally:
            rec.finished.set()
        return resp

