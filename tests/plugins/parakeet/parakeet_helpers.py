"""Audio helpers for the Parakeet plugin tests."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
from livekit import rtc


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
