"""Audio between an aiortc peer connection and a livekit-agents AgentSession (no LiveKit room).

`PeerAudioInput` turns the browser's decoded Opus track into mono `rtc.AudioFrame`s for the session;
`PeerAudioOutput` is the session's audio sink and owns the outgoing `MediaStreamTrack`, paced in real time.
With an `EchoCanceller`, what goes out is its reference and what comes in is cleaned of the agent's echo.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from livekit import rtc
from livekit.agents.voice import io

from .echo import EchoCanceller

logger = logging.getLogger("voice_agent.embedded")

SAMPLE_RATE = 48000  # Opus runs at 48 kHz; the session resamples TTS audio to this rate for us
PTIME = 0.02  # 20 ms packets, what aiortc's Opus encoder expects
SAMPLES_PER_PACKET = int(SAMPLE_RATE * PTIME)
BYTES_PER_PACKET = 2 * SAMPLES_PER_PACKET


class PeerAudioInput(io.AudioInput):
    """Remote audio track (48 kHz, usually stereo s16) → mono 48 kHz int16 frames."""

    def __init__(self, track: MediaStreamTrack, echo: EchoCanceller | None = None) -> None:
        super().__init__(label="aiortc")
        self._track = track
        self._echo = echo
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._pending: list[rtc.AudioFrame] = []

    async def __anext__(self) -> rtc.AudioFrame:
        while not self._pending:
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                raise StopAsyncIteration from None
            for out in self._resampler.resample(frame):
                pcm = out.to_ndarray().tobytes()
                if self._echo is not None:
                    pcm = self._echo.clean(pcm)
                if pcm:
                    self._pending.append(rtc.AudioFrame(pcm, SAMPLE_RATE, 1, len(pcm) // 2))
        return self._pending.pop(0)


class _AgentTrack(MediaStreamTrack):
    """The agent's voice as sent to the peer: 20 ms packets in real time, silence when idle."""

    kind = "audio"

    def __init__(self, output: PeerAudioOutput) -> None:
        super().__init__()
        self._output = output
        self._t0: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            self._pts += SAMPLES_PER_PACKET
            await asyncio.sleep(max(0.0, self._t0 + self._pts / SAMPLE_RATE - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_PACKET)
        frame.planes[0].update(self._output._next_packet())
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


class PeerAudioOutput(io.AudioOutput):
    """Buffers the session's audio (which arrives faster than real time) and reports playback.

    One segment plays at a time (the session waits for each speech's playout). A segment ends when it
    was flushed and its audio has been sent, or at once on `clear_buffer()` (barge-in)."""

    def __init__(self, echo: EchoCanceller | None = None) -> None:
        super().__init__(
            label="aiortc", capabilities=io.AudioOutputCapabilities(pause=True), sample_rate=SAMPLE_RATE
        )
        self.track = _AgentTrack(self)
        self._echo = echo
        self._buf = bytearray()
        self._captured = 0.0  # seconds captured in the current segment
        self._played = 0.0  # seconds of it sent to the peer
        self._flushed = False
        self._started = False
        self._paused = False

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            raise ValueError(
                f"expected {SAMPLE_RATE} Hz mono, got {frame.sample_rate} Hz x{frame.num_channels}"
            )
        self._buf += frame.data.cast("b")
        self._captured += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._captured:
            self._flushed = True
            if not self._buf:
                self._finish(interrupted=False)

    def clear_buffer(self) -> None:
        self._buf.clear()
        if self._captured:
            self._finish(interrupted=True)

    def pause(self) -> None:  # called repeatedly by the session while the user speaks
        super().pause()
        self._paused = True

    def resume(self) -> None:
        super().resume()
        self._paused = False

    def _next_packet(self) -> bytes:
        packet = self._take_packet()
        if self._echo is not None:
            self._echo.played(packet)  # silence too: the canceller follows the line's timeline
        return packet

    def _take_packet(self) -> bytes:
        if self._paused or not self._buf:
            return bytes(BYTES_PER_PACKET)
        if not self._started:
            self._started = True
            self.on_playback_started(created_at=time.time())
        packet = bytes(self._buf[:BYTES_PER_PACKET])
        del self._buf[:BYTES_PER_PACKET]
        self._played += len(packet) / 2 / SAMPLE_RATE
        if self._flushed and not self._buf:
            self._finish(interrupted=False)
        return packet.ljust(BYTES_PER_PACKET, b"\0")

    def _finish(self, *, interrupted: bool) -> None:
        position = min(self._played, self._captured)
        self._captured = self._played = 0.0
        self._flushed = self._started = False
        self.on_playback_finished(playback_position=position, interrupted=interrupted)
