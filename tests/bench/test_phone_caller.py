"""The test phone's media: G.711 μ-law and RFC 4733 key presses, between two endpoints on loopback."""

from __future__ import annotations

import asyncio

import numpy as np

from agent.bench.phone_caller import EVENT_CODES, PhoneCaller, ulaw_decode, ulaw_encode


def test_ulaw_matches_g711() -> None:
    assert ulaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == bytes([0xFF, 0x7F, 0x80, 0x00])
    tone = (np.sin(np.arange(800) / 8000 * 2 * np.pi * 440) * 20000).astype(np.int16)
    error = np.abs(ulaw_decode(ulaw_encode(tone)).astype(int) - tone)
    assert error.max() <= 0.03 * 20000  # μ-law's step in its top segment


async def test_keys_and_speech_arrive_at_the_other_end() -> None:
    a, b = await PhoneCaller.open("127.0.0.1"), await PhoneCaller.open("127.0.0.1")
    try:
        a.connect("127.0.0.1", b.port)
        b.connect("127.0.0.1", a.port)
        await a.press("1#")
        tone = (np.sin(np.arange(48000 // 2) / 48000 * 2 * np.pi * 440) * 12000).astype(np.int16)
        await a.say(tone)
        await asyncio.sleep(0.2)
        ends = [e.message["code"] for e in b.messages("key", end=True)]
        assert ends == [EVENT_CODES["1"]] * 3 + [EVENT_CODES["#"]] * 3, "three end packets per key"
        assert max(lvl for _, lvl in b.audio) > 3000, "the tone came through"
    finally:
        await a.close()
        await b.close()
