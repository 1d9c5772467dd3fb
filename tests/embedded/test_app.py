"""Health, the page, and session slots of the embedded app: connected peers hold the slots, offers that never
connect hold none, are dropped after the connect timeout, and never keep a caller who does connect out."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from agent.bench.caller import Caller
from agent.embedded import create_app
from agent.models import Models
from tests.conftest import ServeApp, StartServer, make_settings
from tests.embedded.offers import aiortc_offer
from tests.fakes.openai_server import ScriptedLLMServer


async def post_offer(url: str, **kwargs: Any) -> tuple[int, dict, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/offer", **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
        assert resp.status == 200
        return await resp.json()


async def wait_health(url: str, key: str, value: int, timeout: float) -> dict:
    """Poll /healthz (bounded) until `key` equals `value`; returns the last health."""
    for _ in range(int(timeout / 0.1)):
        last = await health(url)
        if last[key] == value:
            return last
        await asyncio.sleep(0.1)
    return await health(url)


async def abandoned_offer(url: str) -> int:
    """Post a real offer and never apply the answer (ICE/DTLS cannot complete); the HTTP status."""
    status, _, _ = await post_offer(url, json={"sdp": await aiortc_offer(), "type": "offer"})
    return status


async def test_healthz_reports_models_and_device(start_agent: StartServer) -> None:
    url = await start_agent()
    body = await health(url)
    assert body["ok"] is True
    assert body["models"]["stt"] == "synthetic-tiny" and body["models"]["tts"] == "synthetic-tiny"
    assert body["device"] == "cpu"
    assert (body["sessions"], body["pending"]) == (0, 0)


async def test_healthz_is_503_while_an_engine_cannot_serve(
    sick_models: Models, llm_server: ScriptedLLMServer, serve_app: ServeApp
) -> None:
    url = await serve_app(create_app(make_settings(llm_base_url=llm_server.base_url), sick_models))
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as r:
        assert r.status == 503
        body = await r.json()
    assert body["ok"] is False and body["reason"].startswith("stt: ")
    assert body["engines"]["stt"]["alive"] is False and body["engines"]["tts"]["healthy"] is True


async def test_serves_the_web_page(start_agent: StartServer) -> None:
    url = await start_agent()
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            page = await resp.text()
            assert resp.status == 200 and "<button" in page
            assert "livekit-client" not in page  # embedded mode loads nothing from elsewhere
        async with http.get(f"{url}/static/app.js") as resp:
            assert resp.status == 200 and "./transports.js" in await resp.text()
        async with http.get(f"{url}/static/transports.js") as resp:
            assert resp.status == 200 and "/api/offer" in await resp.text()


async def test_offer_without_audio_is_rejected(start_agent: StartServer) -> None:
    url = await start_agent()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    status, body, _ = await post_offer(url, json={"sdp": pc.localDescription.sdp, "type": "offer"})
    await pc.close()
    assert status == 400 and "no audio track" in body["error"]


async def test_capacity_limit_answers_503_then_frees_the_slot(start_agent: StartServer) -> None:
    url = await start_agent(max_sessions=1)
    first = await Caller.connect(url)
    try:
        with pytest.raises(RuntimeError, match="503"):
            await Caller.connect(url)
        assert (await wait_health(url, "sessions", 1, 10))["sessions"] == 1
    finally:
        await first.close()
    assert (await wait_health(url, "sessions", 0, 20))["sessions"] == 0  # the server noticed the hang-up
    second = await Caller.connect(url)
    await second.close()


async def test_offers_that_never_connect_hold_no_slot_and_are_dropped(start_agent: StartServer) -> None:
    url = await start_agent(max_sessions=1, connect_timeout=2.0, max_sessions_per_client=8)
    for _ in range(3):
        assert await abandoned_offer(url) == 200
    assert (await health(url))["pending"] == 3
    # the only slot is still free for a caller who connects, while the abandoned offers are pending
    caller = await Caller.connect(url)
    try:
        await caller.wait_for(lambda: caller.messages("agent_state"), 60, "the agent's first state")
        assert (await health(url))["sessions"] == 1
        after = await wait_health(url, "pending", 0, 30)  # generous bound; each is dropped after 2 s
        assert (after["pending"], after["sessions"]) == (0, 1)
    finally:
        await caller.close()


async def test_pending_offers_beyond_the_cap_evict_the_oldest(start_agent: StartServer) -> None:
    url = await start_agent(max_pending_offers=2, max_sessions_per_client=8, connect_timeout=60.0)
    for _ in range(4):
        assert await abandoned_offer(url) == 200
    assert (await health(url))["pending"] == 2
    caller = await Caller.connect(url)  # its own offer evicted an abandoned one, and it connects
    try:
        assert (await wait_health(url, "sessions", 1, 10))["sessions"] == 1
    finally:
        await caller.close()


async def test_one_client_cannot_open_more_than_its_share(start_agent: StartServer) -> None:
    url = await start_agent(max_sessions_per_client=2, connect_timeout=60.0)
    assert await abandoned_offer(url) == 200
    assert await abandoned_offer(url) == 200
    status, body, headers = await post_offer(url, json={"sdp": await aiortc_offer(), "type": "offer"})
    assert status == 429 and "2 calls open" in body["error"]
    assert int(headers["Retry-After"]) >= 1
