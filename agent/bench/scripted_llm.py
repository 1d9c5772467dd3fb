"""An OpenAI-compatible chat-completions endpoint that streams one fixed reply: `voice-agent bench call
--llm scripted` points the agent at it to time the voice pipeline without a model provider's latency (and
without a key). It listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from aiohttp import web

# long enough (several sentences, ~10 s of speech) for the caller to talk over it
REPLY = (
    "Sure, here is what I found. The weather will be mild with a light breeze from the west. "
    "In the afternoon a few clouds may pass over, but it should stay dry until the evening. "
    "Tomorrow looks much the same, a little warmer, with sunshine for most of the day."
)


def chunk(
    body: dict[str, Any],
    delta: dict[str, Any] | None,
    *,
    usage: dict[str, int] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a streamed reply; `delta=None` gives the final usage-only chunk."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    out: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": choices,
    }
    if usage:
        out["usage"] = usage
    return out


def sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def tokens(text: str) -> list[str]:
    """Words with their trailing space: how the scripted servers stream a reply."""
    return re.findall(r"\S+\s*", text)


class ScriptedReplyServer:
    """Streams `reply` to every request, `ttft` seconds after it arrives, `tokens_per_second` words a second."""

    def __init__(self, reply: str = REPLY, *, ttft: float = 0.1, tokens_per_second: float = 100.0) -> None:
        self.reply = reply
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> ScriptedReplyServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        await asyncio.sleep(self.ttft)
        sent = 0
        for token in tokens(self.reply):
            await resp.write(sse(chunk(body, {"role": "assistant", "content": token})))
            sent += 1
            await asyncio.sleep(1.0 / self.tokens_per_second)
        usage = {"prompt_tokens": 10, "completion_tokens": sent, "total_tokens": 10 + sent}
        await resp.write(sse(chunk(body, None, usage=usage)))
        await resp.write(b"data: [DONE]\n\n")
        return resp
