"""The media side of a simulated phone: RTP over UDP, G.711 μ-law (PCMU) at 8 kHz in 20 ms packets, and key
presses as RFC 4733 telephone events. A SIP user agent (SIPp in the tests) does the signaling and names
this endpoint's address in its SDP; `connect()` takes the address the other side's SDP names.

What it hears is recorded as (time, level) per packet, like the WebRTC callers, so tests and benchmarks
measure phone calls the same way (levels are of the decoded 16-bit samples).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from livekit import rtc

from .recording import SAMPLE_RATE, CallRecording, SpeechQueue, level

PHONE_RATE = 8000
PHONE_PACKET = 160  # 20 ms
PCMU = 0
TELEPHONE_EVENT = 101  # the payload type the tests' SDP offers for RFC 4733 events
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
KEY_PACKETS = 5  # a key press lasts 100 ms (+ 3 end packets), then 60 ms of silence before the next one
_ULAW_BIAS = 0x84


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 μ-law of int16 samples."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + _ULAW_BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + _ULAW_BIAS) << exponent
    return np.where(u & 0x80, _ULAW_BIAS - magnitude, magnitude - _ULAW_BIAS).astype(np.int16)


def to_phone_rate(pcm: np.ndarray) -> np.ndarray:
    """48 kHz int16 → 8 kHz, with livekit's resampler (soxr)."""
    resampler = rtc.AudioResampler(SAMPLE_RATE, PHONE_RATE, num_channels=1)
    frames = resampler.push(bytearray(pcm.astype(np.int16).tobytes())) + resampler.flush()
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames] or [np.zeros(0, np.int16)])


@dataclass
class _Rtp:
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    seq: int = field(default_factory=lambda: secrets.randbits(16))
    timestamp: int = field(default_factory=lambda: secrets.randbits(32))

    def packet(
        self, payload_type: int, payload: bytes, *, marker: bool = False, advance: bool = True
    ) -> bytes:
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, self.seq, self.timestamp, self.ssrc
        )
        self.seq = (self.seq + 1) & 0xFFFF
        if advance:
            self.timestamp = (self.timestamp + PHONE_PACKET) & 0xFFFFFFFF
        return header + payload


@dataclass
class PhoneCaller(CallRecording, asyncio.DatagramProtocol):
    """`await PhoneCaller.open(ip)`, put `caller.port` in the SDP, `connect()` to the answer's address."""

    speech: SpeechQueue = field(default_factory=lambda: SpeechQueue(PHONE_PACKET))
    remote: tuple[str, int] | None = None
    packets_received: int = 0
    _transport: asyncio.DatagramTransport | None = None
    _keys: list[str] = field(default_factory=list)
    _keys_sent: asyncio.Event = field(default_factory=asyncio.Event)
    _rtp: _Rtp = field(default_factory=_Rtp)
    _sender: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, ip: str, port: int = 0) -> PhoneCaller:
        caller = cls()
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: caller, local_addr=(ip, port))
        return caller

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def connect(self, ip: str, port: int) -> None:
        """Start sending (silence until something is said) to the other side's RTP address."""
        self.remote = (ip, port)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())

    async def say(self, pcm: np.ndarray) -> float:
        """Play 48 kHz `pcm` down the line; returns when its last packet was sent."""
        self.speech.play(to_phone_rate(pcm))
        await self.speech.drained.wait()
        return time.monotonic()

    async def press(self, keys: str) -> float:
        """Press `keys` (0-9, *, #) as RFC 4733 events; returns when the last one was sent."""
        unknown = set(keys) - EVENT_CODES.keys()
        if unknown:
            raise ValueError(f"not keypad keys: {sorted(unknown)}")
        self._keys_sent.clear()
        self._keys.extend(keys)
        await self._keys_sent.wait()
        return time.monotonic()

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.DatagramProtocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        self.packets_received += 1
        payload_type = data[1] & 0x7F
        header = 12 + 4 * (data[0] & 0x0F)
        if payload_type == PCMU:
            self.audio.append((time.monotonic(), level(ulaw_decode(data[header:]))))
        elif payload_type == TELEPHONE_EVENT and len(data) >= header + 4:
            self.record({"type": "key", "code": data[header], "end": bool(data[header + 1] & 0x80)})

    # --- sending, paced by our clock ---
    async def _send(self) -> None:
        next_at = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += PHONE_PACKET / PHONE_RATE
            if self._keys:
                await self._send_key(self._keys.pop(0))
                next_at = time.monotonic()
                if not self._keys:
                    self._keys_sent.set()
                continue
            self._sendto(self._rtp.packet(PCMU, ulaw_encode(self.speech.next_packet())))

    async def _send_key(self, key: str) -> None:
        """One event: KEY_PACKETS updates with the same timestamp, three end packets, then a little silence."""
        start = self._rtp.timestamp
        for i in range(KEY_PACKETS + 3):
            end = i >= KEY_PACKETS
            duration = PHONE_PACKET * min(i + 1, KEY_PACKETS)
            payload = struct.pack("!BBH", EVENT_CODES[key], (0x80 if end else 0) | 10, duration)
            self._rtp.timestamp = start
            self._sendto(self._rtp.packet(TELEPHONE_EVENT, payload, marker=i == 0, advance=False))
            await asyncio.sleep(PHONE_PACKET / PHONE_RATE)
        self._rtp.timestamp = (start + PHONE_PACKET * (KEY_PACKETS + 3)) & 0xFFFFFFFF
        for _ in range(3):  # a gap between keys
            self._sendto(self._rtp.packet(PCMU, ulaw_encode(np.zeros(PHONE_PACKET, np.int16))))
            await asyncio.sleep(PHONE_PACKET / PHONE_RATE)

    def _sendto(self, packet: bytes) -> None:
        if self._transport is not None and self.remote is not None:
            self._transport.sendto(packet, self.remote)
