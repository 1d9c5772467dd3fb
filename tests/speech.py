"""Speech clips for tests: espeak-ng speech, resampled with sox to 48 kHz mono int16."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np


def speak(text: str, out_dir: Path, *, rate: int = 48000, words_per_minute: int = 160) -> np.ndarray:
    raw, wav = out_dir / "espeak.wav", out_dir / f"speech-{abs(hash(text))}-{rate}.wav"
    if not wav.exists():
        subprocess.run(["espeak-ng", "-s", str(words_per_minute), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(wav)], check=True)
    return read_wav(wav)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def noise_burst(seconds: float, *, rate: int = 48000, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * amplitude * 32767).clip(-32767, 32767).astype(np.int16)
