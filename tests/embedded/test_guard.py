"""The API token, per-client rate limits, who the client is, and refusing to serve beyond loopback without a
token: claim by claim, against the real app (and the real console script for the startup refusal)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from agent.embedded.guard import RateLimiter, check_startup, json_depth
from agent.errors import StartupError
from tests.conftest import StartServer, make_settings
from tests.embedded.offers import aiortc_offer
from tests.test_cli import assert_one_line_error, run_cli

TOKEN = "a-test-api-token-0123456789"


async def post(url: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http, http.post(url + path, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def connect(url: str, headers: dict[str, str]) -> RTCPeerConnection:
    """A real call's WebRTC leg with these request headers; returns the connected peer (close it)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
    status, body, _ = await post(url, "/api/offer", json=offer, headers=headers)
    assert status == 200, body
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    for _ in range(300):  # bounded: 30 s
        if pc.connectionState == "connected":
            return pc
        await asyncio.sleep(0.1)
    await pc.close()
    raise AssertionError(f"not connected: {pc.connectionState}")


async def test_without_a_token_loopback_is_open(start_agent: StartServer) -> None:
    url = await start_agent()
    pc = await connect(url, {})
    await pc.close()


async def test_with_a_token_the_offer_needs_it(start_agent: StartServer) -> None:
    url = await start_agent(api_token=TOKEN)
    offer = {"sdp": await aiortc_offer(), "type": "offer"}
    for headers, needle in (
        ({}, "API token is required"),
        (bearer("wrong-token-wrong-token"), "not valid"),
        (bearer(TOKEN + "x"), "not valid"),
        ({"Authorization": TOKEN}, "API token is required"),  # not the Bearer scheme
    ):
        status, body, resp_headers = await post(url, "/api/offer", json=offer, headers=headers)
        assert status == 401 and needle in body["error"], body
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    # health and the page's config stay open (probes, and the page has to ask for the token)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/healthz") as r:
            assert r.status == 200
        async with http.get(url + "/api/config") as r:
            assert (await r.json())["auth"] is True
    pc = await connect(url, bearer(TOKEN))
    await pc.close()


async def test_offers_are_rate_limited_per_client(start_agent: StartServer) -> None:
    url = await start_agent(rate_limit_per_minute=3)
    for _ in range(3):
        status, _, _ = await post(url, "/api/offer", json={"sdp": "v=0", "type": "offer"})
        assert status == 400  # malformed, and still counted
    status, body, headers = await post(url, "/api/offer", json={"sdp": "v=0", "type": "offer"})
    assert status == 429 and "too many requests" in body["error"]
    assert 1 <= int(headers["Retry-After"]) <= 20


async def test_trusted_proxy_names_the_client(start_agent: StartServer) -> None:
    """Behind a trusted proxy each X-Forwarded-For client has its own limit; from anyone else the header
    means nothing."""
    offer = {"json": {"sdp": "v=0", "type": "offer"}}
    url = await start_agent(rate_limit_per_minute=1, trusted_proxies=["127.0.0.0/8"])
    a, b = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    assert (await post(url, "/api/offer", headers=a, **offer))[0] == 400
    assert (await post(url, "/api/offer", headers=a, **offer))[0] == 429
    assert (await post(url, "/api/offer", headers=b, **offer))[0] == 400
    # the right-most untrusted hop is the client: a forged left-most entry does not help
    forged = {"X-Forwarded-For": "192.0.2.1, 203.0.113.9"}
    assert (await post(url, "/api/offer", headers=forged, **offer))[0] == 429

    untrusting = await start_agent(rate_limit_per_minute=1)
    assert (await post(untrusting, "/api/offer", headers=a, **offer))[0] == 400
    assert (await post(untrusting, "/api/offer", headers=b, **offer))[0] == 429


def test_rate_limiter_refills_and_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, max_clients=3, clock=lambda: now[0])
    assert limiter.acquire("a") == 0 and limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(30.0)
    now[0] = 31.0
    assert limiter.acquire("a") == 0
    for client in "bcde":
        limiter.acquire(client)
    assert len(limiter._buckets) == 3


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"sdp": "[[[{{{", "x": ["\\"]]]"]}') == 2
    assert json_depth(b"[" * 100_000, limit=8) == 9  # stops counting past the limit
    assert json_depth(b'"' + b'\\"' * 50_000) == 0  # linear on escape-heavy strings


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_needs_no_token(host: str) -> None:
    check_startup(make_settings(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.203.0.1", "voice.example.com"])
def test_beyond_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(StartupError, match="VOICE_AGENT_API_TOKEN"):
        check_startup(make_settings(host=host))
    check_startup(make_settings(host=host, api_token=TOKEN))


@pytest.mark.parametrize("command", ["serve", "web"])
def test_cli_refuses_to_serve_beyond_loopback_without_a_token(command: str) -> None:
    env = {
        "GROQ_API_KEY": "k",
        "LIVEKIT_URL": "ws://127.0.0.1:7880",
        "LIVEKIT_API_KEY": "APIkey",
        "LIVEKIT_API_SECRET": "s" * 32,
        "VOICE_AGENT_HOST": "0.0.0.0",
        "VOICE_AGENT_STT_MODEL": "/nonexistent/never-loaded.nemo",  # refused before any model loads
    }
    proc = run_cli(command, env=env, timeout=120)
    assert_one_line_error(proc, "VOICE_AGENT_HOST=0.0.0.0", "VOICE_AGENT_API_TOKEN")


def test_a_short_api_token_is_refused() -> None:
    proc = run_cli(
        "web",
        env={
            "LIVEKIT_URL": "ws://x",
            "LIVEKIT_API_KEY": "k",
            "LIVEKIT_API_SECRET": "s",
            "VOICE_AGENT_API_TOKEN": "short",
        },
    )
    assert_one_line_error(proc, "VOICE_AGENT_API_TOKEN", "16 characters")
    assert "short" not in proc.stderr.replace("VOICE_AGENT_API_TOKEN", "")  # the secret is not echoed


def test_settings_never_print_the_token() -> None:
    settings = make_settings(api_token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in json.dumps(settings.model_dump(mode="json"))
