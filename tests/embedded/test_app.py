"""Signalling and health endpoints of the embedded app: bad input gets a 4xx and the server keeps serving."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from agent.bench.caller import Caller
from tests.conftest import StartServer

_NO_ICE_SDP = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n"
)


async def _post(url: str, **kwargs: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/offer", **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json()


async def _health(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_healthz_reports_models_and_device(start_agent: StartServer) -> None:
    url = await start_agent()
    health = await _health(url)
    assert health["ok"] is True
    assert health["models"]["stt"] == "synthetic-tiny" and health["models"]["tts"] == "synthetic-tiny"
    assert health["device"] == "cpu"
    assert health["sessions"] == 0


async def test_serves_the_web_page(start_agent: StartServer) -> None:
    url = await start_agent()
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200 and "<button" in await resp.text()
        async with http.get(f"{url}/static/app.js") as resp:
            assert resp.status == 200 and "/api/offer" in await resp.text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"json": ["sdp"]}, "JSON object"),
        ({"json": {"sdp": "v=0", "type": "answer"}}, '"type" must be "offer"'),
        ({"json": {"type": "offer"}}, '"sdp" must be'),
        ({"json": {"sdp": "this is not sdp", "type": "offer"}}, "no audio track"),
        (
            {"json": {"sdp": "v=0\r\nm=audio notaport UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}},
            "invalid SDP offer",
        ),
        ({"json": {"sdp": _NO_ICE_SDP, "type": "offer"}}, "invalid SDP offer: ICE"),
    ],
)
async def test_malformed_offers_get_400_and_server_keeps_serving(
    start_agent: StartServer, kwargs: dict, message: str
) -> None:
    url = await start_agent()
    status, body = await _post(url, **kwargs)
    assert status == 400
    assert message in body["error"]
    assert (await _health(url))["sessions"] == 0


async def test_offer_without_audio_is_rejected(start_agent: StartServer) -> None:
    url = await start_agent()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    status, body = await _post(url, json={"sdp": pc.localDescription.sdp, "type": "offer"})
    await pc.close()
    assert status == 400 and "no audio track" in body["error"]


async def test_capacity_limit_answers_503_then_frees_the_slot(start_agent: StartServer) -> None:
    url = await start_agent(max_sessions=1)
    first = await Caller.connect(url)
    try:
        with pytest.raises(RuntimeError, match="503"):
            await Caller.connect(url)
        assert (await _health(url))["sessions"] == 1
    finally:
        await first.close()
    for _ in range(100):  # bounded: the server notices the hang-up and frees the slot
        if (await _health(url))["sessions"] == 0:
            break
        await asyncio.sleep(0.2)
    second = await Caller.connect(url)
    await second.close()


async def test_abandoned_offer_frees_its_slot(start_agent: StartServer) -> None:
    url = await start_agent(max_sessions=1, connect_timeout=1.0)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    status, _ = await _post(url, json={"sdp": pc.localDescription.sdp, "type": "offer"})
    await pc.close()  # never applies the answer: ICE/DTLS cannot complete
    assert status == 200
    for _ in range(100):  # bounded
        if (await _health(url))["sessions"] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await _health(url))["sessions"] == 0
