"""Audio helpers for the Parakeet plugin tests."""

from __future__ import annotations

import asyncio
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from livekit import rtc
from livekit.plugins import parakeet
from livekit.plugins.parakeet import loading, testing

FRAME = 320  # 20 ms, as transports deliver audio


def to_frame(audio: np.ndarray, sample_rate: int = 16000, num_channels: int = 1) -> rtc.AudioFrame:
    """float32 [-1, 1] samples ([n] or [n, channels]) → one int16 AudioFrame."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    return rtc.AudioFrame(pcm.tobytes(), sample_rate, num_channels, pcm.shape[0])


def resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """16 kHz float32 mono → `sample_rate`, through livekit's resampler."""
    resampler = rtc.AudioResampler(16000, sample_rate, quality=rtc.AudioResamplerQuality.HIGH)
    frames = resampler.push(to_frame(audio)) + resampler.flush()
    return np.frombuffer(rtc.combine_audio_frames(frames).data, dtype=np.int16).astype(np.float32) / 32768.0


def split_frames(frame: rtc.AudioFrame, ms: int = 20) -> list[rtc.AudioFrame]:
    """Cut one frame into transport-sized frames, as a VAD segment arrives."""
    n = frame.sample_rate * ms // 1000
    data = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return [
        rtc.AudioFrame(data[i : i + n].tobytes(), frame.sample_rate, frame.num_channels, len(data[i : i + n]))
        for i in range(0, len(data), n)
    ]


def espeak(text: str, out_dir: Path) -> tuple[np.ndarray, int]:
    """espeak-ng speech as float32 mono at espeak's native rate (22050 Hz)."""
    path = out_dir / f"espeak-{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0, w.getframerate()


def words(text: str) -> list[str]:
    return text.split()


class Listener:
    """Collects a stream's updates and errors on the test's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.updates: list[parakeet.StreamUpdate] = []
        self.errors: list[BaseException] = []
        self.changed = asyncio.Event()

    def on_update(self, update: parakeet.StreamUpdate) -> None:
        self.loop.call_soon_threadsafe(self._add, self.updates, update)

    def on_error(self, error: BaseException) -> None:
        self.loop.call_soon_threadsafe(self._add, self.errors, error)

    def _add(self, items: list, item: object) -> None:
        items.append(item)
        self.changed.set()

    @property
    def finals(self) -> list[parakeet.StreamUpdate]:
        return [u for u in self.updates if u.final]

    async def wait_final(self, count: int = 1) -> None:
        await self.wait(lambda: len(self.finals) >= count)

    async def wait_error(self) -> None:
        await self.wait(lambda: bool(self.errors))

    async def wait(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def open_stream(
    engine: parakeet.ParakeetEngine, config: parakeet.StreamingConfig | None = None
) -> tuple[parakeet.EngineStream, Listener]:
    listener = Listener()
    return engine.open_stream(listener.on_update, listener.on_error, config), listener


def push(stream: parakeet.EngineStream, audio: np.ndarray) -> None:
    for i in range(0, len(audio), FRAME):
        stream.push(audio[i : i + FRAME])


def private_engine(model: str = "synthetic-tiny", **options: object) -> parakeet.ParakeetEngine:
    """An engine of its own (not the shared registry one) on synthetic `model`; the caller closes it."""
    path = testing.ensure_synthetic_model(model)
    return parakeet.ParakeetEngine(
        loading.load_asr_model(str(path), torch.device("cpu")),
        model_name=model,
        device=torch.device("cpu"),
        **options,  # type: ignore[arg-type]
    )


RATE = 16000


def full_steps(samples: int, config: parakeet.StreamingConfig) -> int:
    """Steps a stream takes before a flush, when all its audio is there."""
    chunk, right = round(config.chunk * RATE), round(config.right * RATE)
    return 0 if samples < chunk + right else (samples - chunk - right) // chunk + 1


async def wait_steps(stream: parakeet.EngineStream, steps: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stream.stats.steps < steps:
        assert time.monotonic() < deadline, f"{stream.stats.steps} of {steps} steps"
        await asyncio.sleep(0.01)


async def finish(opened: list[tuple[parakeet.EngineStream, Listener]]) -> list[str]:
    """Flush every stream, wait for each final, close the streams; the finals' texts in order."""
    for stream, _ in opened:
        stream.flush()
    for stream, listener in opened:
        await listener.wait_final()
        stream.close()
    return [listener.finals[0].text for _, listener in opened]


def utterance(seconds: float, seed: int) -> np.ndarray:
    return testing.pad(testing.speech_like(seconds, seed=seed), before=0.4, after=0.5)
