"""The session's LLM: the configured model, then its fallbacks, each held to three deadlines.

livekit-agents' `FallbackAdapter` tries the models in order (`VOICE_AGENT_LLM_MODEL`, then
`VOICE_AGENT_LLM_FALLBACK_MODELS` on the same endpoint, then `VOICE_AGENT_LLM_FALLBACK_URL`) and marks a
failed one unavailable until a background probe sees it answer again. The OpenAI client bounds a request by
one timeout for every phase; a voice turn needs three: a short one to connect, a longer one until the first
streamed bytes (the model reads the prompt), and one for a stall between chunks once the answer flows. The
HTTP transport below enforces them and raises httpx timeouts, which the plugin turns into retryable
`APITimeoutError`s, so the adapter moves to the next model as long as nothing has been spoken yet.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import certifi
import httpx
import openai
from livekit.agents import llm
from livekit.plugins import groq
from livekit.plugins import openai as lk_openai

from .settings import Settings


@dataclass(frozen=True)
class Deadlines:
    connect: float
    """seconds to open the connection"""
    first_token: float
    """seconds from sending the request to the first streamed bytes of the answer"""
    stall: float
    """longest gap between two chunks of a streaming answer"""

    @classmethod
    def of(cls, settings: Settings) -> Deadlines:
        return cls(settings.llm_connect_timeout, settings.llm_first_token_timeout, settings.llm_stall_timeout)

    @property
    def backstop(self) -> float:
        """the OpenAI client's own per-request timeout: never the one that fires first"""
        return self.connect + self.first_token + self.stall


class DeadlineTransport(httpx.AsyncBaseTransport):
    """An httpx transport that holds each request to `Deadlines` (see the module docstring)."""

    def __init__(self, deadlines: Deadlines, inner: httpx.AsyncBaseTransport) -> None:
        self._deadlines = deadlines
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        d = self._deadlines
        timeouts = dict(request.extensions.get("timeout", {}))
        timeouts.update(connect=d.connect, pool=d.connect)
        request.extensions["timeout"] = timeouts
        first_by = time.monotonic() + d.first_token
        try:
            response = await asyncio.wait_for(self._inner.handle_async_request(request), d.first_token)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {d.first_token:g} s", request=request) from None
        response.stream = _DeadlineStream(response.stream, request, first_by, d)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _DeadlineStream(httpx.AsyncByteStream):
    def __init__(
        self, inner: httpx.AsyncByteStream, request: httpx.Request, first_by: float, deadlines: Deadlines
    ) -> None:
        self._inner = inner
        self._request = request
        self._first_by = first_by
        self._deadlines = deadlines

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        first = True
        while True:
            if first:
                timeout, what = max(0.0, self._first_by - time.monotonic()), "first token"
            else:
                timeout, what = self._deadlines.stall, "next chunk"
            try:
                chunk = await asyncio.wait_for(anext(chunks), timeout)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise httpx.ReadTimeout(
                    f"LLM stream: no {what} within {timeout:.1f} s", request=self._request
                ) from None
            first = first and not chunk
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class LLMChain(llm.FallbackAdapter):
    """`FallbackAdapter` over the models of `build_llm`; `aclose` also closes their HTTP connections."""

    def __init__(self, models: list[llm.LLM], http: httpx.AsyncClient, **options: object) -> None:
        super().__init__(models, **options)  # type: ignore[arg-type]
        self._http = http

    async def aclose(self) -> None:
        await super().aclose()
        await self._http.aclose()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle takes ~0.1 s, too long to repeat on a call's loop."""
    return ssl.create_default_context(cafile=certifi.where())


def _client(base_url: str, api_key: str, http: httpx.AsyncClient) -> openai.AsyncClient:
    # retries are the adapter's business: the next model, not the same one again
    return openai.AsyncClient(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)


def build_llm(settings: Settings) -> LLMChain:
    """The configured model and its fallbacks, in order, as one LLM."""
    deadlines = Deadlines.of(settings)
    # Self-hosted OpenAI-compatible servers usually take any key; Groq's is checked at startup.
    key = settings.groq_api_key.get_secret_value() if settings.groq_api_key else "not-needed"
    # one connection pool for the chain, closed with it (the session ends it: session.build_session)
    http = httpx.AsyncClient(
        transport=DeadlineTransport(deadlines, httpx.AsyncHTTPTransport(verify=_tls())), follow_redirects=True
    )
    models: list[llm.LLM] = []
    for name in [settings.llm_model, *settings.llm_fallback_models]:
        client = _client(settings.llm_base_url, key, http)
        models.append(groq.LLM(model=name, api_key=key, client=client, temperature=settings.llm_temperature))
    if settings.llm_fallback_url:
        fallback_key = settings.llm_fallback_api_key
        client = _client(
            settings.llm_fallback_url, fallback_key.get_secret_value() if fallback_key else "not-needed", http
        )
        models.append(
            lk_openai.LLM(
                model=settings.llm_fallback_url_model, client=client, temperature=settings.llm_temperature
            )
        )
    return LLMChain(
        models,
        http,
        attempt_timeout=deadlines.backstop,
        max_retry_per_llm=0,
        retry_interval=0.1,
    )
