"""A simulated caller over real WebRTC (aiortc): speaks scripted audio into `POST /api/offer`, records what
comes back (agent audio levels, data-channel events), each with a monotonic timestamp.

Used by the end-to-end tests and the benchmarks; it talks to loopback only (no ICE servers)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..embedded.jitter import set_peer_audio_prefetch
from .recording import PACKET, SAMPLE_RATE, CallRecording, SpeechQueue, level


class _Microphone(MediaStreamTrack):
    """Sends the caller's queued speech in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, speech: SpeechQueue) -> None:
        super().__init__()
        self._speech = speech
        self._t0: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            self._pts += PACKET
            await asyncio.sleep(max(0.0, self._t0 + self._pts / SAMPLE_RATE - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=PACKET)
        frame.planes[0].update(self._speech.next_packet().tobytes())
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


@dataclass
class Caller(CallRecording):
    """Connect with `await Caller.connect(base_url)`; close with `await caller.close()`."""

    pc: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    session_id: str = ""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        timeout: float = 30.0,
        echo_gain: float = 0.0,
        headers: dict[str, str] | None = None,
        receive_jitter_packets: int = 1,
    ) -> Caller:
        """`echo_gain`: see `SpeechQueue`; `headers`: e.g. the API token's `Authorization`."""
        caller = cls(speech=SpeechQueue(echo_gain=echo_gain))
        pc = caller.pc
        pc.addTrack(_Microphone(caller.speech))
        channel = pc.createDataChannel("events")
        channel.on("message", lambda data: caller.record(json.loads(data)))
        pc.on("track", lambda track: caller._tasks.append(asyncio.create_task(caller._listen(track))))
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), headers=headers) as http,
            http.post(f"{base_url}/api/offer", json=offer) as resp,
        ):
            body = await resp.json()
            if resp.status != 200:
                await pc.close()
                raise RuntimeError(f"offer rejected ({resp.status}): {body}")
        caller.session_id = body["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        # a browser on a clean network plays what arrives within a packet or two (WebRTC's NetEQ), not after
        # aiortc's 80 ms default
        set_peer_audio_prefetch(pc, receive_jitter_packets)
        await caller.wait_for(lambda: pc.connectionState == "connected", timeout, "the WebRTC connection")
        return caller

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
            pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1).astype(np.int16)
            self.audio.append((time.monotonic(), level(pcm)))
            self.speech.hear(pcm)
