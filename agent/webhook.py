"""`POST /api/livekit/webhook` (with `VOICE_AGENT_WEBHOOK_ENABLED`): LiveKit's room events, verified with
livekit-api's WebhookReceiver against LIVEKIT_API_KEY / LIVEKIT_API_SECRET (a JWT signed with the secret whose
sha256 claim is the body's hash). Unsigned, wrongly signed or tampered requests get 401.

Used to free the per-client token caps of `POST /api/token` (agent/rooms.py): a caller who joined holds their
token until `participant_left`, a room's tokens end with `room_finished`. Point livekit.yaml's `webhook.urls`
at this route (the `webhook.api_key` there must be the same LIVEKIT_API_KEY).
"""

from __future__ import annotations

import logging

from aiohttp import web
from google.protobuf.json_format import ParseError
from livekit import api

from . import rooms
from .embedded import guard
from .settings import Settings

logger = logging.getLogger("voice_agent.webhook")

ROUTE = "/api/livekit/webhook"
MAX_WEBHOOK_BYTES = 64 * 1024

RECEIVER = web.AppKey("webhook_receiver", api.WebhookReceiver)


async def receive(request: web.Request) -> web.Response:
    auth = request.headers.get("Authorization", "").strip()
    if auth.lower().startswith("bearer "):
        auth = auth[7:].strip()
    if not auth:
        raise guard.json_error(web.HTTPUnauthorized, "the webhook is not signed (no Authorization header)")
    raw = await guard.read_body(request, MAX_WEBHOOK_BYTES)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise guard.json_error(web.HTTPBadRequest, "webhook body is not UTF-8") from None
    try:
        event = request.app[RECEIVER].receive(body, auth)
    except ParseError:
        raise guard.json_error(web.HTTPBadRequest, "webhook body is not a LiveKit event") from None
    except Exception as e:  # noqa: BLE001 - livekit-api raises jwt errors and bare Exception (bad hash)
        logger.info("refused a webhook: %s", type(e).__name__)
        raise guard.json_error(web.HTTPUnauthorized, "the webhook signature is not valid") from None

    holds = request.app[rooms.HOLDS]
    room = event.room.name
    if event.event == "participant_joined":
        holds.joined(room, event.participant.identity)
    elif event.event == "participant_left":
        holds.left(room, event.participant.identity)
    elif event.event == "room_finished":
        holds.finished(room)
    logger.debug("webhook %s for room %s", event.event, room)
    return web.json_response({"ok": True})


def add_routes(app: web.Application, settings: Settings) -> None:
    assert settings.livekit_api_key and settings.livekit_api_secret
    verifier = api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
    app[RECEIVER] = api.WebhookReceiver(verifier)
    app.router.add_post(ROUTE, receive)
