"""What the simulated callers say: espeak-ng speech at 48 kHz mono int16, made once per text and cached.

Real speech matters with real models (a Parakeet that hears no words commits no turn); espeak-ng is a Debian
/ Homebrew package (`apt install espeak-ng`)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
from livekit import rtc

from ..errors import StartupError
from .recording import SAMPLE_RATE


def speak(text: str, cache_dir: Path, *, words_per_minute: int = 160) -> np.ndarray:
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{words_per_minute}:{text}".encode()).hexdigest()[:16]
    raw = cache_dir / f"{key}.wav"
    if not raw.exists():
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise StartupError(
                "the simulated callers speak with espeak-ng: install it (apt install espeak-ng)"
            )
        partial = raw.with_suffix(".partial")
        subprocess.run([espeak, "-s", str(words_per_minute), "-w", str(partial), text], check=True)
        partial.rename(raw)
    with wave.open(str(raw)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    return resample(np.frombuffer(pcm, dtype=np.int16), rate)


def resample(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Mono int16 at `rate` → mono int16 at 48 kHz."""
    if rate == SAMPLE_RATE:
        return pcm
    resampler = rtc.AudioResampler(rate, SAMPLE_RATE, quality=rtc.AudioResamplerQuality.HIGH)
    frames = resampler.push(rtc.AudioFrame(pcm.tobytes(), rate, 1, len(pcm))) + resampler.flush()
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
