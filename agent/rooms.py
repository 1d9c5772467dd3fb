"""Room mode for the web page: `POST /api/token` hands a browser a short-lived token for one LiveKit room.

The token allows joining that room only (no admin, no room creation beyond it), publishing the microphone
and data, and carries a room configuration that dispatches this project's agent (by its agent name) into
the room when the server creates it, so no separate dispatch API call is needed.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web
from livekit import api

from .settings import Settings

ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDENTITY = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_TOKEN_REQUEST_BYTES = 4 * 1024

SETTINGS = web.AppKey("room_settings", Settings)


class TokenRequestError(ValueError):
    pass


def room_token(settings: Settings, room: str, identity: str) -> str:
    assert settings.livekit_api_key and settings.livekit_api_secret
    return (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
        .with_identity(identity)
        .with_ttl(timedelta(seconds=settings.token_ttl))
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
                can_publish_sources=["microphone"],
            )
        )
        .with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=settings.agent_name)])
        )
        .to_jwt()
    )


def parse_token_request(body: Any) -> tuple[str, str]:
    """(room, identity) from `{"room"?: str, "identity"?: str}`; fresh random names for what is missing."""
    if not isinstance(body, dict):
        raise TokenRequestError('expected a JSON object {"room"?: "...", "identity"?: "..."}')
    room = body.get("room") or f"call-{secrets.token_hex(6)}"
    identity = body.get("identity") or f"caller-{secrets.token_hex(4)}"
    if not isinstance(room, str) or not ROOM_NAME.match(room):
        raise TokenRequestError('"room" must be 1-64 letters, digits, "-" or "_"')
    if not isinstance(identity, str) or not IDENTITY.match(identity):
        raise TokenRequestError('"identity" must be 1-64 letters, digits or "_.@-"')
    return room, identity


async def token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await request.json() if request.can_read_body else {}
        room, identity = parse_token_request(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad_request("request body is not valid JSON") from None
    except TokenRequestError as e:
        raise _bad_request(str(e)) from None
    return web.json_response(
        {
            "url": settings.livekit_public_url or settings.livekit_url,
            "token": room_token(settings, room, identity),
            "room": room,
            "identity": identity,
            "expires_in": settings.token_ttl,
        },
        headers={"Cache-Control": "no-store"},
    )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def add_routes(app: web.Application, settings: Settings) -> None:
    app[SETTINGS] = settings
    app.router.add_post("/api/token", token)
