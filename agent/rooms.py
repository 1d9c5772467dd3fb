"""Room mode for the web page: `POST /api/token` hands a browser a short-lived token for one LiveKit room.

The token allows joining that room only (no admin, no room creation beyond it), publishing the microphone
and data, and carries a room configuration that dispatches this project's agent (by its agent name) into
the room when the server creates it, so no separate dispatch API call is needed.

Every token can put an agent (a GPU session) to work, so:
* room names and identities are the server's (random, prefixed) unless the caller presents the API token;
* each client (address) gets `VOICE_AGENT_RATE_LIMIT_PER_MINUTE` requests a minute and holds at most
  `VOICE_AGENT_MAX_ROOMS_PER_CLIENT` tokens at a time (429 beyond). A token is held until its TTL passes
  unused, or, with LiveKit webhooks (agent/webhook.py), from the caller joining until they leave or the room
  finishes.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from livekit import api

from .embedded import guard
from .settings import Settings

ROOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDENTITY = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_TOKEN_REQUEST_BYTES = 4 * 1024
ROOM_PREFIX, IDENTITY_PREFIX = "call-", "caller-"
MAX_HOLDS = 100_000  # all clients together: memory stays bounded whatever the number of addresses

SETTINGS = web.AppKey("room_settings", Settings)


class TokenRequestError(ValueError):
    pass


class NotAllowed(ValueError):
    pass


@dataclass
class _Hold:
    client: str
    room: str
    identity: str
    expires: float


class RoomHolds:
    """The tokens each client holds: a token counts until `token_ttl` passes without its participant
    joining; once joined (webhook) until they leave, the room finishes, or `call_bound` passes."""

    def __init__(
        self,
        per_client: int,
        token_ttl: float,
        call_bound: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_client = per_client
        self._token_ttl = token_ttl
        self._call_bound = call_bound
        self._clock = clock
        self._holds: dict[tuple[str, str], _Hold] = {}

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, h in self._holds.items() if h.expires <= now]:
            del self._holds[key]

    def held(self, client: str) -> list[_Hold]:
        now = self._clock()
        return [h for h in self._holds.values() if h.client == client and h.expires > now]

    def retry_after(self, client: str) -> float:
        """0 when `client` may have another token, else the seconds until its earliest one lapses."""
        held = self.held(client)
        if len(held) < self._per_client:
            return 0.0
        return min(h.expires for h in held) - self._clock()

    def add(self, client: str, room: str, identity: str) -> None:
        if len(self._holds) >= MAX_HOLDS:
            self._prune()
            while len(self._holds) >= MAX_HOLDS:  # bounded: drops the holds that lapse soonest
                del self._holds[min(self._holds, key=lambda k: self._holds[k].expires)]
        self._holds[(room, identity)] = _Hold(client, room, identity, self._clock() + self._token_ttl)

    def joined(self, room: str, identity: str) -> None:
        hold = self._holds.get((room, identity))
        if hold is not None:
            hold.expires = self._clock() + self._call_bound

    def left(self, room: str, identity: str) -> None:
        self._holds.pop((room, identity), None)

    def finished(self, room: str) -> None:
        for key in [k for k in self._holds if k[0] == room]:
            del self._holds[key]


HOLDS = web.AppKey("room_holds", RoomHolds)
TOKEN_LIMIT = web.AppKey("token_limit", guard.RateLimiter)


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


def parse_token_request(body: Any, *, authorised: bool) -> tuple[str, str]:
    """(room, identity) from `{"room"?: str, "identity"?: str}`; fresh random names for what is missing.
    Only an authorised caller (API token) may choose names (NotAllowed otherwise)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise TokenRequestError('expected a JSON object {"room"?: "...", "identity"?: "..."}')
    chosen = [name for name in ("room", "identity") if body.get(name) not in (None, "")]
    if chosen and not authorised:
        raise NotAllowed(
            f"choosing the {' and '.join(chosen)} needs the API token; send {{}} for fresh names"
        )
    room = body.get("room") or f"{ROOM_PREFIX}{secrets.token_hex(8)}"
    identity = body.get("identity") or f"{IDENTITY_PREFIX}{secrets.token_hex(6)}"
    if not isinstance(room, str) or not ROOM_NAME.match(room):
        raise TokenRequestError('"room" must be 1-64 letters, digits, "-" or "_"')
    if not isinstance(identity, str) or not IDENTITY.match(identity):
        raise TokenRequestError('"identity" must be 1-64 letters, digits or "_.@-"')
    return room, identity


async def token(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    guard.check_rate(app[TOKEN_LIMIT], request)
    body = await guard.read_json(request, MAX_TOKEN_REQUEST_BYTES)
    try:
        room, identity = parse_token_request(body, authorised=request[guard.AUTHORISED])
    except NotAllowed as e:
        raise guard.json_error(web.HTTPForbidden, str(e)) from None
    except TokenRequestError as e:
        raise guard.json_error(web.HTTPBadRequest, str(e)) from None
    client = request[guard.CLIENT]
    wait = app[HOLDS].retry_after(client)
    if wait > 0:
        raise guard.too_many(
            f"your address already holds {settings.max_rooms_per_client} call tokens: try again later", wait
        )
    app[HOLDS].add(client, room, identity)
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


def add_routes(app: web.Application, settings: Settings) -> None:
    app[SETTINGS] = settings
    app[TOKEN_LIMIT] = guard.RateLimiter(settings.rate_limit_per_minute)
    app[HOLDS] = RoomHolds(
        settings.max_rooms_per_client,
        token_ttl=settings.token_ttl,
        call_bound=max(settings.token_ttl, settings.max_call_duration),
    )
    app.router.add_post("/api/token", token)
