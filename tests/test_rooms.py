"""The room token endpoint, served by the web app without models (`voice-agent web`)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from livekit import api

from agent.embedded import create_app
from agent.settings import Settings
from tests.conftest import ServeApp

KEY, SECRET = "APItest", "a-test-secret-that-is-long-enough-for-livekit"
API_TOKEN = "a-test-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

GetApp = Callable[..., Awaitable[str]]


def room_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "livekit_url": "ws://livekit.internal:7880",
        "livekit_api_key": KEY,
        "livekit_api_secret": SECRET,
        "livekit_public_url": "wss://rtc.example.com",
        "agent_name": "phone-agent",
        "token_ttl": 300,
    }
    return Settings(_env_file=None, **(base | overrides))  # type: ignore[call-arg]


@pytest.fixture
def start_web(serve_app: ServeApp) -> GetApp:
    """`await start_web(settings)`: the app without models (`voice-agent web`) on loopback; its base URL."""

    async def start(settings: Settings) -> str:
        return await serve_app(create_app(settings, None))

    return start


async def post(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as r:
        return r.status, await r.json(content_type=None)


async def post_with_headers(url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as r:
        return r.status, await r.json(content_type=None), r.headers


async def test_token_grants_exactly_one_room_and_dispatches_the_agent(start_web: GetApp) -> None:
    base = await start_web(room_settings(api_token=API_TOKEN))
    status, body = await post(
        base + "/api/token", json={"room": "demo-room", "identity": "alice"}, headers=AUTH
    )
    assert status == 200, body
    assert body["url"] == "wss://rtc.example.com"
    assert (body["room"], body["identity"], body["expires_in"]) == ("demo-room", "alice", 300)

    claims = api.TokenVerifier(KEY, SECRET).verify(body["token"])
    assert claims.identity == "alice"
    video = claims.video
    assert video.room_join is True and video.room == "demo-room"
    assert not video.room_admin and not video.room_create and not video.room_list and not video.agent
    assert video.can_publish_sources == ["microphone"]
    assert [a.agent_name for a in claims.room_config.agents] == ["phone-agent"]

    raw = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert raw["iss"] == KEY
    assert raw["exp"] - raw["nbf"] == 300


async def test_missing_names_get_fresh_random_ones(start_web: GetApp) -> None:
    base = await start_web(room_settings())
    _, first = await post(base + "/api/token")
    _, second = await post(base + "/api/token", json={})
    assert re.fullmatch(r"call-[0-9a-f]{16}", first["room"]), first
    assert re.fullmatch(r"caller-[0-9a-f]{12}", first["identity"]), first
    assert first["room"] != second["room"] and first["identity"] != second["identity"]
    assert api.TokenVerifier(KEY, SECRET).verify(first["token"]).video.room == first["room"]


async def test_public_url_defaults_to_the_server_url(start_web: GetApp) -> None:
    base = await start_web(room_settings(livekit_public_url=None))
    _, body = await post(base + "/api/token", json={})
    assert body["url"] == "ws://livekit.internal:7880"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"json": ["room"]}, "JSON object"),
        ({"json": {"room": "../etc"}}, '"room"'),
        ({"json": {"room": "x" * 65}}, '"room"'),
        ({"json": {"identity": "a b"}}, '"identity"'),
        ({"json": {"room": 7}}, '"room"'),
        (
            {"data": b"[" * 1000 + b"]" * 1000, "headers": {"Content-Type": "application/json"}},
            "nested deeper",
        ),
    ],
)
async def test_bad_requests_are_400(start_web: GetApp, kwargs: dict[str, Any], needle: str) -> None:
    base = await start_web(room_settings(api_token=API_TOKEN))
    headers = {**kwargs.pop("headers", {}), **AUTH}
    status, body = await post(base + "/api/token", headers=headers, **kwargs)
    assert status == 400
    assert needle in body["error"]


async def test_huge_bodies_are_413(start_web: GetApp) -> None:
    base = await start_web(room_settings())
    status, body = await post(base + "/api/token", data=b"[" * 100_000 + b"]" * 100_000)
    assert status == 413 and "larger than" in body["error"]


@pytest.mark.parametrize("body", [{"room": "my-room"}, {"identity": "alice"}, {"room": "r", "identity": "i"}])
async def test_only_an_authorised_caller_chooses_names(start_web: GetApp, body: dict[str, str]) -> None:
    open_base = await start_web(room_settings())  # loopback without a token: open, but names are ours
    status, answer = await post(open_base + "/api/token", json=body)
    assert status == 403 and "needs the API token" in answer["error"]
    base = await start_web(room_settings(api_token=API_TOKEN))
    status, answer = await post(base + "/api/token", json=body, headers=AUTH)
    assert status == 200 and all(answer[k] == v for k, v in body.items())


async def test_a_configured_token_is_required(start_web: GetApp) -> None:
    base = await start_web(room_settings(api_token=API_TOKEN))
    for headers in (
        {},
        {"Authorization": "Bearer not-the-token-at-all"},
        {"Authorization": f"Basic {API_TOKEN}"},
    ):
        status, body, resp_headers = await post_with_headers(base + "/api/token", json={}, headers=headers)
        assert status == 401 and "API token" in body["error"]
        assert "token" not in body  # nothing was issued
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    status, body = await post(base + "/api/token", json={}, headers=AUTH)
    assert status == 200 and body["room"].startswith("call-")


async def test_token_requests_are_rate_limited(start_web: GetApp) -> None:
    base = await start_web(room_settings(rate_limit_per_minute=2, max_rooms_per_client=10))
    assert (await post(base + "/api/token", json={}))[0] == 200
    assert (await post(base + "/api/token", json={"room": "x"}))[0] == 403  # counted too
    status, body, headers = await post_with_headers(base + "/api/token", json={})
    assert status == 429 and "too many requests" in body["error"]
    assert 1 <= int(headers["Retry-After"]) <= 30


async def test_a_client_holds_a_bounded_number_of_tokens(start_web: GetApp) -> None:
    base = await start_web(room_settings(max_rooms_per_client=2, token_ttl=300))
    assert (await post(base + "/api/token", json={}))[0] == 200
    assert (await post(base + "/api/token", json={}))[0] == 200
    status, body, headers = await post_with_headers(base + "/api/token", json={})
    assert status == 429 and "holds 2 call tokens" in body["error"]
    assert 250 <= int(headers["Retry-After"]) <= 300  # until the first token lapses unused


async def test_web_only_app_offers_rooms_and_no_embedded_calls(start_web: GetApp) -> None:
    base = await start_web(room_settings())
    async with aiohttp.ClientSession() as http, http.get(base + "/api/config") as r:
        config = await r.json()
    assert config["embedded"] is False and config["room"] is True and config["auth"] is False
    assert config["livekit_client_url"].endswith("livekit-client.esm.mjs")
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/healthz") as r:
            assert (await r.json())["ok"] is True
        async with http.post(base + "/api/offer", json={"sdp": "v=0", "type": "offer"}) as r:
            assert r.status == 404


async def test_no_token_endpoint_without_livekit_settings(start_web: GetApp) -> None:
    base = await start_web(room_settings(livekit_url=None))
    async with aiohttp.ClientSession() as http, http.post(base + "/api/token", json={}) as r:
        assert r.status == 404
