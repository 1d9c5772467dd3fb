"""The HTTP app: web page, health, embedded-mode WebRTC signalling (`POST /api/offer`) when this process
holds the models, and LiveKit room tokens (`POST /api/token`) when LiveKit settings are present."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import RTCSessionDescription

from .. import rooms
from ..models import Models
from ..settings import Settings
from .peer import BadOffer, PeerSession

logger = logging.getLogger("voice_agent.embedded")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
MAX_OFFER_BYTES = 256 * 1024

PEERS = web.AppKey("peers", set[PeerSession])
SETTINGS = web.AppKey("settings", Settings)
MODELS = web.AppKey("models", Models)


def create_app(settings: Settings, models: Models | None, web_dir: Path = WEB_DIR) -> web.Application:
    """`models=None` serves the page for room mode only (`voice-agent web`, no GPU needed)."""
    app = web.Application(client_max_size=MAX_OFFER_BYTES)
    app[PEERS] = set()
    app[SETTINGS] = settings
    if models is not None:
        app[MODELS] = models
        app.router.add_post("/api/offer", offer)
    if settings.has_livekit:
        rooms.add_routes(app, settings)
    app.router.add_get("/api/config", config)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", _page(web_dir / "index.html"))
    app.router.add_static("/static/", web_dir)
    app.on_shutdown.append(_close_peers)
    return app


def _page(path: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def handler(_: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return handler


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def _parse_offer(body: Any) -> RTCSessionDescription:
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, 'expected a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise _error(web.HTTPBadRequest, '"type" must be "offer"')
    if not isinstance(sdp, str) or not sdp.strip():
        raise _error(web.HTTPBadRequest, '"sdp" must be a non-empty string')
    return RTCSessionDescription(sdp=sdp, type=kind)


async def offer(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _error(web.HTTPBadRequest, "request body is not valid JSON") from None
    description = _parse_offer(body)

    app = request.app
    peers = app[PEERS]
    if len(peers) >= app[SETTINGS].max_sessions:
        raise _error(web.HTTPServiceUnavailable, "the agent is at capacity, try again shortly")

    peer = PeerSession(app[SETTINGS], app[MODELS], on_closed=peers.discard)
    peers.add(peer)
    try:
        answer = await peer.accept(description)
    except BadOffer as e:
        await peer.close()
        raise _error(web.HTTPBadRequest, str(e)) from None
    except Exception:
        logger.exception("could not start a session")
        await peer.close()
        raise _error(web.HTTPInternalServerError, "could not start a session") from None
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": peer.id})


async def config(request: web.Request) -> web.Response:
    """Which transports this server offers; the page picks embedded when it can, else a LiveKit room."""
    app = request.app
    body: dict[str, Any] = {"embedded": MODELS in app, "room": rooms.SETTINGS in app}
    if rooms.SETTINGS in app:
        body["livekit_client_url"] = app[SETTINGS].livekit_client_url
        body["agent_join_timeout"] = app[SETTINGS].agent_join_timeout
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    health: dict[str, Any] = {"ok": True, "embedded": MODELS in app, "room": rooms.SETTINGS in app}
    if MODELS in app:
        health |= {
            "models": app[MODELS].describe(),
            "device": str(app[MODELS].stt.device),
            "sessions": len(app[PEERS]),
            "max_sessions": app[SETTINGS].max_sessions,
        }
    return web.json_response(health)


async def _close_peers(app: web.Application) -> None:
    await asyncio.gather(*(peer.close() for peer in list(app[PEERS])))
