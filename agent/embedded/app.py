"""The HTTP app: web page, health, embedded-mode WebRTC signalling (`POST /api/offer`) when this process
holds the models, and LiveKit room tokens (`POST /api/token`) when LiveKit settings are present.

Every API error is `{"error": "..."}` with a 4xx status (a 500 says only "could not start a session"; the
detail goes to the log). See agent/embedded/guard.py for the API token and rate limits, sdp.py for what an
offer must be, sessions.py for how session slots are held."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCSessionDescription

from .. import rooms, webhook
from ..conversations import api as conversations_api
from ..metrics_engines import metrics_handler
from ..models import Models
from ..settings import Settings
from . import guard
from .page import LIVEKIT_CLIENT_ROUTE, livekit_client, render_index
from .peer import BadOffer, PeerSession
from .sdp import check_offer
from .sessions import AtCapacity, ClientLimit, Sessions

logger = logging.getLogger("voice_agent.embedded")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
MAX_OFFER_BYTES = 64 * 1024
PROTECTED = frozenset({"/api/offer", "/api/token"})  # need VOICE_AGENT_API_TOKEN when it is set


def _protected(request: web.Request) -> bool:
    return request.path in PROTECTED or request.path.startswith(conversations_api.PREFIX)


SESSIONS = web.AppKey("sessions", Sessions)
OFFER_LIMIT = web.AppKey("offer_limit", guard.RateLimiter)
SETTINGS = web.AppKey("settings", Settings)
MODELS = web.AppKey("models", Models)


def create_app(settings: Settings, models: Models | None, web_dir: Path = WEB_DIR) -> web.Application:
    """`models=None` serves the page for room mode only (`voice-agent web`, no GPU needed)."""
    app = web.Application(
        client_max_size=MAX_OFFER_BYTES,
        middlewares=[guard.guard_middleware(settings, _protected)],
    )
    app[SESSIONS] = Sessions(settings)
    app[SETTINGS] = settings
    if models is not None:
        app[MODELS] = models
        app[OFFER_LIMIT] = guard.RateLimiter(settings.rate_limit_per_minute)
        app.router.add_post("/api/offer", offer)
    if settings.has_livekit:
        rooms.add_routes(app, settings)
        if settings.webhook_enabled:
            webhook.add_routes(app, settings)
    app.router.add_get("/api/config", config)
    conversations_api.setup(app, settings)  # opens the process's conversation store with the app
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler(models))
    index = render_index(web_dir / "index.html", settings if settings.has_livekit else None)
    app.router.add_get("/", _page(index))
    if settings.livekit_client_file is not None:
        app.router.add_get(LIVEKIT_CLIENT_ROUTE, _file(settings.livekit_client_file))
    app.router.add_static("/static/", web_dir)
    app.on_shutdown.append(_close_peers)
    return app


def _page(html: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})

    return handler


def _file(path: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def handler(_: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Content-Type": "text/javascript"})

    return handler


def _parse_offer(body: Any) -> RTCSessionDescription:
    if not isinstance(body, dict):
        raise guard.json_error(web.HTTPBadRequest, 'expected a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise guard.json_error(web.HTTPBadRequest, '"type" must be "offer"')
    if not isinstance(sdp, str) or not sdp.strip():
        raise guard.json_error(web.HTTPBadRequest, '"sdp" must be a non-empty string')
    try:
        check_offer(sdp)
    except BadOffer as e:
        raise guard.json_error(web.HTTPBadRequest, str(e)) from None
    return RTCSessionDescription(sdp=sdp, type=kind)


async def offer(request: web.Request) -> web.Response:
    app = request.app
    guard.check_rate(app[OFFER_LIMIT], request)
    description = _parse_offer(await guard.read_json(request, MAX_OFFER_BYTES))

    sessions, settings = app[SESSIONS], app[SETTINGS]
    client = request[guard.CLIENT]
    try:
        sessions.check_admission(client)
    except ClientLimit:
        raise guard.too_many(
            f"your address already has {settings.max_sessions_per_client} calls open: hang up one first",
            settings.connect_timeout,
        ) from None
    except AtCapacity:
        raise guard.json_error(
            web.HTTPServiceUnavailable,
            "the agent is at capacity, try again shortly",
            headers={"Retry-After": "5"},
        ) from None

    peer = PeerSession(settings, app[MODELS], client, on_connected=sessions.claim, on_closed=sessions.discard)
    sessions.add(peer)
    try:
        answer = await peer.answer(description)
    except BadOffer as e:
        await peer.close()
        raise guard.json_error(web.HTTPBadRequest, str(e)) from None
    except Exception:
        logger.exception("could not start a session")
        await peer.close()
        raise guard.json_error(web.HTTPInternalServerError, "could not start a session") from None
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": peer.id})


async def config(request: web.Request) -> web.Response:
    """Which transports this server offers; the page picks embedded when it can, else a LiveKit room."""
    app = request.app
    settings = app[SETTINGS]
    body: dict[str, Any] = {
        "embedded": MODELS in app,
        "room": rooms.SETTINGS in app,
        "auth": settings.api_token is not None,
        "live_instructions": settings.live_instructions,
        "instructions_max_chars": settings.instructions_max_chars,
    }
    if rooms.SETTINGS in app:
        body["livekit_client_url"] = livekit_client(settings)[0]
        body["agent_join_timeout"] = settings.agent_join_timeout
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    """200 while this process can take calls; 503 (with the reason) while a model engine cannot."""
    app = request.app
    health: dict[str, Any] = {"ok": True, "embedded": MODELS in app, "room": rooms.SETTINGS in app}
    if MODELS in app:
        models = app[MODELS]
        problems = models.unhealthy()
        health |= {
            "ok": not problems,
            "models": models.describe(),
            "device": str(models.stt.device),
            "engines": models.health(),
            "sessions": app[SESSIONS].active,
            "pending": app[SESSIONS].pending,
            "max_sessions": app[SETTINGS].max_sessions,
        }
        if problems:
            health["reason"] = "; ".join(problems)
    if (saved := conversations_api.health(app)) is not None:
        health["conversations"] = saved
        if not saved["ok"]:
            health["ok"] = False
            health["reason"] = "; ".join(filter(None, [health.get("reason"), "the conversation writer stopped"]))
    return web.json_response(health, status=200 if health["ok"] else 503)


async def _close_peers(app: web.Application) -> None:
    await app[SESSIONS].close_all()
