"""What a simulated caller hears and sees, with monotonic timestamps, whatever its transport (aiortc peer or
LiveKit room participant); and the queue of PCM it speaks from, paced in real time by the transport."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLE_RATE = 48000
PACKET = 960  # 20 ms


def level(pcm: np.ndarray) -> float:
    """Mean |int16| of a frame: 0 for digital silence, a few thousand for speech."""
    return float(np.abs(pcm.astype(np.int32)).mean()) if pcm.size else 0.0


class SpeechQueue:
    """PCM (mono int16, 48 kHz unless the transport says otherwise) waiting to be sent; the transport takes
    one 20 ms packet at a time and sends silence when nothing is queued.

    With `echo_gain` > 0 the microphone also picks up what the caller hears (`hear()`), that much quieter, as a
    speakerphone without echo cancellation does (-10 dB: `echo_gain=10 ** (-10 / 20)`)."""

    def __init__(self, packet: int = PACKET, *, echo_gain: float = 0.0) -> None:
        self.packet = packet
        self.echo_gain = echo_gain
        self._queue = np.zeros(0, dtype=np.int16)
        self._echo = np.zeros(0, dtype=np.int16)
        self.drained = asyncio.Event()
        self.drained.set()
        self.started: asyncio.Future[float] | None = None
        """when the first packet of the latest `play()` was taken (monotonic)"""

    def hear(self, pcm: np.ndarray) -> None:
        """Mono int16 the caller's loudspeaker just played (kept only while echo is on, at most 0.2 s)."""
        if self.echo_gain > 0:
            self._echo = np.concatenate([self._echo, pcm.astype(np.int16)])[-10 * self.packet :]

    def play(self, pcm: np.ndarray) -> None:
        self._queue = np.concatenate([self._queue, pcm.astype(np.int16)])
        self.drained.clear()
        self.started = asyncio.get_running_loop().create_future()

    def next_packet(self) -> np.ndarray:
        chunk, self._queue = self._queue[: self.packet], self._queue[self.packet :]
        if len(chunk) and self.started is not None and not self.started.done():
            self.started.set_result(time.monotonic())
        if len(self._queue) == 0 and len(chunk):
            self.drained.set()
        packet = np.pad(chunk, (0, self.packet - len(chunk)))
        if self.echo_gain > 0 and len(self._echo):
            echo, self._echo = self._echo[: self.packet], self._echo[self.packet :]
            mixed = packet.astype(np.float32) + self.echo_gain * np.pad(echo, (0, self.packet - len(echo)))
            packet = mixed.clip(-32768, 32767).astype(np.int16)
        return packet


@dataclass
class Event:
    at: float
    message: dict[str, Any]


@dataclass
class CallRecording:
    """Received agent audio as (time, level) per frame, and messages as dicts with a "type" key."""

    speech: SpeechQueue = field(default_factory=SpeechQueue)
    audio: list[tuple[float, float]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    async def say(self, pcm: np.ndarray) -> float:
        """Play `pcm` (48 kHz mono int16) and return the monotonic time its last sample was sent."""
        self.speech.play(pcm)
        await self.speech.drained.wait()
        return time.monotonic()

    async def silence(self, seconds: float) -> None:
        await self.say(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16))

    def record(self, message: dict[str, Any]) -> None:
        self.events.append(Event(time.monotonic(), message))

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

    async def wait_for_value(self, get: Any, timeout: float, what: str) -> Any:
        """`get()` once it is not None (e.g. `first_audio_after(t)`), polling like `wait_for`."""
        await self.wait_for(lambda: get() is not None, timeout, what)
        return get()

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)
