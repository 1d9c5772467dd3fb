"""Malformed offers: every class gets a 4xx with a JSON error (never a 500, never exception text), and the server
still takes a real call afterwards. Plus a mutation sweep: whatever `check_offer` lets through, aiortc answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from agent.bench.caller import Caller
from agent.embedded.peer import PeerSession
from agent.embedded.sdp import BadOffer, check_offer
from tests.conftest import StartServer
from tests.embedded.offers import CHROME_OFFER, FIREFOX_OFFER, aiortc_offer


async def post_offer(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/offer", **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


def _replace(sdp: str, old: str, new: str) -> str:
    assert old in sdp
    return sdp.replace(old, new)


def _drop(sdp: str, prefix: str) -> str:
    kept = [line for line in sdp.split("\r\n") if not line.startswith(prefix)]
    assert len(kept) < len(sdp.split("\r\n"))
    return "\r\n".join(kept)


def malformed_bodies(offer: str) -> Iterator[tuple[str, dict[str, Any], int, str]]:
    """(case, request kwargs, status, needle in the error) for every class of bad input."""
    as_json = {"headers": {"Content-Type": "application/json"}}

    def sdp(text: str) -> dict[str, Any]:
        return {"json": {"sdp": text, "type": "offer"}}

    yield "not JSON", {"data": b"{not json", **as_json}, 400, "not valid JSON"
    yield "not UTF-8", {"data": b'{"sdp": "\xff\xfe"}', **as_json}, 400, "not valid JSON"
    yield "empty body", {"data": b"", **as_json}, 400, "JSON object"
    yield "JSON array", {"json": ["sdp"]}, 400, "JSON object"
    yield "nested 20 000 deep", {"data": b"[" * 20_000 + b"]" * 20_000, **as_json}, 400, "nested deeper"
    yield "nested 100 000 deep", {"data": b"[" * 100_000 + b"]" * 100_000, **as_json}, 413, "larger than"
    yield (
        "deep in an object",
        {"data": b'{"sdp": ' + b"[" * 5000 + b"]" * 5000 + b"}", **as_json},
        400,
        "deeper",
    )
    yield "too large", {"data": b'{"sdp": "' + b"x" * 70_000 + b'"}', **as_json}, 413, "larger than"
    yield "type answer", {"json": {"sdp": offer, "type": "answer"}}, 400, '"type" must be "offer"'
    yield "no sdp", {"json": {"type": "offer"}}, 400, '"sdp" must be'
    yield "sdp not a string", {"json": {"sdp": {"v": 0}, "type": "offer"}}, 400, '"sdp" must be'
    yield "garbage SDP", sdp("this is not sdp"), 400, '"v=0"'
    yield "bad m= line", sdp("v=0\r\nm=audio notaport UDP/TLS/RTP/SAVPF 111\r\n"), 400, "m= line"
    yield "control characters", sdp(_replace(offer, "s=-", "s=\x00\x1b")), 400, "printable ASCII"
    yield "line separators", sdp(_replace(offer, "s=-", "s=a\u2028b")), 400, "printable ASCII"
    yield "unknown media kind", sdp(_replace(offer, "m=audio", "m=hologram")), 400, "unknown media kind"
    yield "video", sdp(_replace(offer, "m=audio", "m=video")), 400, "video"
    yield "no fingerprint", sdp(_drop(offer, "a=fingerprint")), 400, "no DTLS fingerprint"
    yield (
        "bad fingerprint",
        sdp(_replace(offer, "a=fingerprint:sha-256 ", "a=fingerprint:md5 ")),
        400,
        "fingerprint",
    )
    yield "plain RTP/AVP", sdp(_replace(offer, "UDP/TLS/RTP/SAVPF", "RTP/AVP")), 400, "UDP/TLS/RTP/SAVPF"
    yield "SDES RTP/SAVP", sdp(_replace(offer, "UDP/TLS/RTP/SAVPF", "RTP/SAVP")), 400, "UDP/TLS/RTP/SAVPF"
    yield "no ICE credentials", sdp(_drop(offer, "a=ice-pwd")), 400, "ICE username fragment or password"
    yield "no setup", sdp(_drop(offer, "a=setup")), 400, "a=setup"
    yield "bad setup", sdp(_replace(offer, "a=setup:actpass", "a=setup:sideways")), 400, "a=setup"
    yield "no rtcp-mux", sdp(_drop(offer, "a=rtcp-mux")), 400, "rtcp-mux"
    yield "payload type", sdp(_replace(offer, "SAVPF 96", "SAVPF 96 foo")), 400, "payload type"
    yield "bad rtpmap", sdp(_replace(offer, "a=rtpmap:96 opus/48000/2", "a=rtpmap:96 opus")), 400, "a=rtpmap"
    yield "bad candidate", sdp(offer.replace("a=mid:0", "a=mid:0\r\na=candidate:1 x udp")), 400, "candidate"
    yield "BUNDLE of nothing", sdp(_replace(offer, "a=group:BUNDLE 0 1", "a=group:BUNDLE 7")), 400, "BUNDLE"
    yield "no mid", sdp(_drop(offer, "a=mid")), 400, "a=mid"
    data_only = offer.split("m=audio")[0] + "m=application" + offer.split("m=application")[1]
    yield "data channel only", sdp(_replace(data_only, "BUNDLE 0 1", "BUNDLE 1")), 400, "no audio track"


async def test_every_malformed_offer_gets_a_4xx_then_a_real_call_works(start_agent: StartServer) -> None:
    url = await start_agent(rate_limit_per_minute=1000)
    offer = await aiortc_offer()
    cases = list(malformed_bodies(offer))
    assert len(cases) >= 30
    for case, kwargs, status, needle in cases:
        got, body = await post_offer(url, **kwargs)
        assert (got, case) == (status, case), body
        assert isinstance(body, dict) and set(body) == {"error"}, (case, body)
        assert needle in body["error"], (case, body)
        assert "Traceback" not in body["error"] and "Error" not in body["error"], (case, body)

    caller = await Caller.connect(url)
    try:
        await caller.wait_for(lambda: caller.messages("agent_state"), 60, "the agent's first state")
    finally:
        await caller.close()


async def test_unexpected_failure_is_a_500_without_the_detail(
    start_agent: StartServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(self: PeerSession, offer: RTCSessionDescription) -> RTCSessionDescription:
        raise RuntimeError("internal detail /etc/secret-path")

    monkeypatch.setattr(PeerSession, "answer", explode)
    url = await start_agent()
    status, body = await post_offer(url, json={"sdp": await aiortc_offer(), "type": "offer"})
    assert status == 500
    assert body == {"error": "could not start a session"}
    assert "internal detail /etc/secret-path" in caplog.text  # the detail is in the log only


@pytest.mark.parametrize("sdp", [CHROME_OFFER, FIREFOX_OFFER], ids=["chrome", "firefox"])
async def test_browser_offers_pass_and_aiortc_answers_them(sdp: str) -> None:
    check_offer(sdp)
    assert await _aiortc_answers(sdp)


def _mutations(sdp: str) -> Iterator[str]:
    """Each line dropped, doubled, its value replaced, and each of its space-separated fields replaced."""
    garbage = ["", "x", "-1", "99999999999999", "a b c", "1 2", ":", "/", "IN IP4"]
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        yield "\r\n".join(lines[:i] + lines[i + 1 :])
        yield "\r\n".join(lines[: i + 1] + lines[i:])
        head = line.partition(":")[0] + ":" if line.startswith("a=") and ":" in line else line[:2]
        for g in garbage:
            yield "\r\n".join([*lines[:i], head + g, *lines[i + 1 :]])
        fields = line.split(" ")
        for j in range(1, len(fields)):
            for g in ("x", "-1", "", "999999"):
                yield "\r\n".join([*lines[:i], " ".join([*fields[:j], g, *fields[j + 1 :]]), *lines[i + 1 :]])


async def _aiortc_answers(sdp: str) -> bool:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return True
    except Exception as e:  # noqa: BLE001 - the test reports which mutation aiortc choked on
        print(f"aiortc raised {type(e).__name__}: {e}")
        return False
    finally:
        try:
            await pc.close()
        except Exception as e:  # noqa: BLE001
            print(f"close raised {type(e).__name__}")


@pytest.mark.parametrize("source", ["aiortc", "chrome", "firefox"])
async def test_whatever_check_offer_accepts_aiortc_can_answer(source: str) -> None:
    """aiortc's parser asserts and indexes without checks: nothing that passes our check may trip it."""
    sdp = {"aiortc": None, "chrome": CHROME_OFFER, "firefox": FIREFOX_OFFER}[source] or await aiortc_offer()
    accepted = refused = 0
    for mutated in _mutations(sdp):
        try:
            check_offer(mutated)
        except BadOffer as e:
            refused += 1
            assert str(e) and len(str(e)) < 200
            continue
        accepted += 1
        assert await _aiortc_answers(mutated), json.dumps(mutated)
    assert accepted > 50 and refused > 100  # the sweep exercised both sides
