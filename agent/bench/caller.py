"""A simulated caller over real WebRTC (aiortc): speaks scripted audio into `POST /api/offer`, records what
comes back (agent audio levels, data-channel events), each with a monotonic timestamp.

Used by the end-to-end tests and the benchmarks; it talks to loopback only (no ICE servers)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

SAMPLE_RATE = 48000
PACKET = 960  # 20 ms


class _Microphone(MediaStreamTrack):
    """Plays queued PCM (48 kHz mono int16) in real time; silence when nothing is queued."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue = np.zeros(0, dtype=np.int16)
        self._t0: float | None = None
        self._pts = 0
        self.drained = asyncio.Event()
        self.drained.set()

    def play(self, pcm: np.ndarray) -> None:
        self._queue = np.concatenate([self._queue, pcm.astype(np.int16)])
        self.drained.clear()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            self._pts += PACKET
            await asyncio.sleep(max(0.0, self._t0 + self._pts / SAMPLE_RATE - time.monotonic()))
        chunk, self._queue = self._queue[:PACKET], self._queue[PACKET:]
        if len(self._queue) == 0 and len(chunk):
            self.drained.set()
        frame = av.AudioFrame(format="s16", layout="mono", samples=PACKET)
        frame.planes[0].update(np.pad(chunk, (0, PACKET - len(chunk))).tobytes())
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


@dataclass
class Event:
    at: float
    message: dict[str, Any]


@dataclass
class Caller:
    """Connect with `await Caller.connect(base_url)`; close with `await caller.close()`."""

    pc: RTCPeerConnection
    mic: _Microphone
    session_id: str = ""
    audio: list[tuple[float, float]] = field(default_factory=list)  # (time, mean |int16|) per received frame
    events: list[Event] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def connect(cls, base_url: str, *, timeout: float = 30.0) -> Caller:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        caller = cls(pc=pc, mic=_Microphone())
        pc.addTrack(caller.mic)
        channel = pc.createDataChannel("events")
        channel.on("message", lambda data: caller.events.append(Event(time.monotonic(), json.loads(data))))
        pc.on("track", lambda track: caller._tasks.append(asyncio.create_task(caller._listen(track))))
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.post(f"{base_url}/api/offer", json=offer) as resp,
        ):
            body = await resp.json()
            if resp.status != 200:
                await pc.close()
                raise RuntimeError(f"offer rejected ({resp.status}): {body}")
        caller.session_id = body["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        await caller.wait_for(lambda: pc.connectionState == "connected", timeout, "the WebRTC connection")
        return caller

    async def say(self, pcm: np.ndarray) -> float:
        """Play `pcm` (48 kHz mono int16) and return the monotonic time its last sample was sent."""
        self.mic.play(pcm)
        await self.mic.drained.wait()
        return time.monotonic()

    async def silence(self, seconds: float) -> None:
        await self.say(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16))

    def first_audio_after(self, t: float, *, level: float = 200.0) -> float | None:
        return next((at for at, lvl in self.audio if at > t and lvl >= level), None)

    def last_audio(self, *, level: float = 200.0) -> float | None:
        return next((at for at, lvl in reversed(self.audio) if lvl >= level), None)

    def messages(self, type_: str, **match: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.message.get("type") == type_ and all(e.message.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame.to_ndarray()
            self.audio.append((time.monotonic(), float(np.abs(pcm.astype(np.int32)).mean())))
