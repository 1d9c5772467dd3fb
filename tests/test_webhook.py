"""LiveKit webhooks (`POST /api/livekit/webhook`): requests signed the way livekit-server signs them (a JWT from
the API secret whose sha256 claim is the body's hash, built with livekit-api's token machinery) are accepted and
free the per-client token caps; unsigned, wrongly signed or tampered ones get 401."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from livekit import api

from agent.embedded import create_app
from agent.settings import Settings
from tests.conftest import ServeApp
from tests.test_rooms import KEY, SECRET, GetApp, post, room_settings

WEBHOOK = "/api/livekit/webhook"


@pytest.fixture
def start_web(serve_app: ServeApp) -> GetApp:
    async def start(settings: Settings) -> str:
        return await serve_app(create_app(settings, None))

    return start


def event(kind: str, room: str, identity: str | None = None) -> str:
    body: dict[str, Any] = {"event": kind, "room": {"name": room}, "id": "EV_test", "createdAt": "1"}
    if identity is not None:
        body["participant"] = {"identity": identity}
    return json.dumps(body)


def signature(body: str, key: str = KEY, secret: str = SECRET, ttl: float = 300) -> str:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).with_ttl(timedelta(seconds=ttl)).to_jwt()


async def send(base: str, body: str, auth: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/webhook+json"}
    if auth is not None:
        headers["Authorization"] = auth
    async with aiohttp.ClientSession() as http, http.post(base + WEBHOOK, data=body, headers=headers) as r:
        return r.status, await r.json() if r.content_type == "application/json" else await r.text()


async def test_signed_events_free_the_token_cap(start_web: GetApp) -> None:
    base = await start_web(room_settings(webhook_enabled=True, max_rooms_per_client=1))
    status, first = await post(base + "/api/token", json={})
    assert status == 200
    assert (await post(base + "/api/token", json={}))[0] == 429

    joined = event("participant_joined", first["room"], first["identity"])
    assert await send(base, joined, signature(joined)) == (200, {"ok": True})
    assert (await post(base + "/api/token", json={}))[0] == 429  # still in the call
    left = event("participant_left", first["room"], first["identity"])
    assert (await send(base, left, signature(left)))[0] == 200
    status, second = await post(base + "/api/token", json={})
    assert status == 200

    finished = event("room_finished", second["room"])
    assert (await send(base, finished, f"Bearer {signature(finished)}"))[0] == 200  # either header form
    assert (await post(base + "/api/token", json={}))[0] == 200


async def test_events_for_other_rooms_change_nothing(start_web: GetApp) -> None:
    base = await start_web(room_settings(webhook_enabled=True, max_rooms_per_client=1))
    assert (await post(base + "/api/token", json={}))[0] == 200
    other = event("room_finished", "someone-elses-room")
    assert (await send(base, other, signature(other)))[0] == 200
    assert (await post(base + "/api/token", json={}))[0] == 429


@pytest.mark.parametrize(
    "case", ["unsigned", "garbage", "wrong secret", "wrong key", "tampered body", "expired", "no sha256"]
)
async def test_unverifiable_webhooks_are_401(start_web: GetApp, case: str) -> None:
    base = await start_web(room_settings(webhook_enabled=True, max_rooms_per_client=1))
    status, token = await post(base + "/api/token", json={})
    body = event("participant_left", token["room"], token["identity"])
    auth = {
        "unsigned": None,
        "garbage": "not-a-jwt",
        "wrong secret": signature(body, secret="another-secret-that-is-long-enough-for-it"),
        "wrong key": signature(body, key="APIother"),
        "tampered body": signature(event("participant_left", token["room"], "someone-else")),
        "expired": signature(body, ttl=-3600),
        "no sha256": api.AccessToken(KEY, SECRET).to_jwt(),
    }[case]
    status, answer = await send(base, body, auth)
    assert status == 401 and "webhook" in answer["error"], answer
    assert (await post(base + "/api/token", json={}))[0] == 429  # the hold was not freed


async def test_webhook_does_not_need_the_api_token(start_web: GetApp) -> None:
    base = await start_web(room_settings(webhook_enabled=True, api_token="a-test-api-token-0123456789"))
    body = event("room_finished", "any-room")
    assert (await send(base, body, signature(body)))[0] == 200


async def test_webhook_route_is_off_unless_enabled(start_web: GetApp) -> None:
    base = await start_web(room_settings())
    body = event("room_finished", "any-room")
    assert (await send(base, body, signature(body)))[0] == 404
