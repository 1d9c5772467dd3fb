"""`GET /api/conversations` (newest first, `?limit=` up to MAX_LIMIT, `?before=` an ISO 8601 time: the page
after the one whose `next_before` it is) and `GET /api/conversations/{id}` (the call and its transcript).
Both need VOICE_AGENT_API_TOKEN when it is set (agent/embedded/guard.py); reads run in a thread.

`setup(app, settings)` opens the process's store with the app and closes it with the app."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from ..embedded import guard
from ..settings import Settings
from .database import parse_time
from .store import ConversationStore, acquire, release

PREFIX = "/api/conversations"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

STORE = web.AppKey("conversation_store", ConversationStore)
LIMITER = web.AppKey("conversation_limiter", guard.RateLimiter)


def setup(app: web.Application, settings: Settings) -> None:
    """Nothing when recording is off."""
    if not settings.conversations_enabled:
        return

    async def open_store(app: web.Application) -> None:
        store = await asyncio.to_thread(acquire, settings)
        if store is not None:
            app[STORE] = store

    async def close_store(app: web.Application) -> None:
        if STORE in app:
            await asyncio.to_thread(release, app[STORE])

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    app[LIMITER] = guard.RateLimiter(settings.rate_limit_per_minute)
    app.router.add_get(PREFIX, list_conversations)
    app.router.add_get(PREFIX + "/{id}", show_conversation)


def health(app: web.Application) -> dict[str, Any] | None:
    return app[STORE].health() if STORE in app else None


def _bad(message: str) -> web.HTTPException:
    return guard.json_error(web.HTTPBadRequest, message)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad(f'"limit" must be a whole number from 1 to {MAX_LIMIT}')
    return int(raw)


def _before(request: web.Request) -> datetime | None:
    raw = request.query.get("before")
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise _bad('"before" must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z') from None


async def list_conversations(request: web.Request) -> web.Response:
    guard.check_rate(request.app[LIMITER], request)
    limit, before = _limit(request), _before(request)
    calls = await asyncio.to_thread(request.app[STORE].database.list_calls, limit, before)
    next_before = calls[-1]["started_at"] if len(calls) == limit else None
    return web.json_response({"conversations": calls, "next_before": next_before})


async def show_conversation(request: web.Request) -> web.Response:
    guard.check_rate(request.app[LIMITER], request)
    call_id = request.match_info["id"]
    call = await asyncio.to_thread(request.app[STORE].database.get_call, call_id)
    if call is None:
        raise guard.json_error(web.HTTPNotFound, f"no saved conversation {call_id!r}")
    return web.json_response(call)
