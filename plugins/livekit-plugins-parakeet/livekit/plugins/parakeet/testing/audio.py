"""Deterministic speech-like test audio, mono float32 in [-1, 1]: what the synthetic models are calibrated on,
and handy in tests and benchmarks that need audio a VAD accepts as speech without a TTS engine."""

from __future__ import annotations

import numpy as np

# (F1, F2, F3) in Hz of a few English vowels: /a/, /i/, /u/, /e/, /o/, /ae/
_VOWELS = np.array(
    [
        (730, 1090, 2440),
        (270, 2290, 3010),
        (300, 870, 2240),
        (530, 1840, 2480),
        (570, 840, 2410),
        (660, 1720, 2410),
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])


def speech_like(
    duration: float,
    *,
    sample_rate: int = 16000,
    seed: int = 0,
    f0: float = 120.0,
    syllable_rate: float = 4.0,
    level: float = 0.3,
) -> np.ndarray:
    """Voiced "syllables": a harmonic source at a wandering pitch `f0`, shaped by vowel formants that
    change per syllable, with a syllabic amplitude envelope. Peak amplitude is `level`."""
    rng = np.random.default_rng(seed)
    n = int(duration * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate

    # one vowel per syllable, formants glide linearly between syllable centres
    n_syl = max(2, int(np.ceil(duration * syllable_rate)) + 1)
    centres = np.arange(n_syl) / syllable_rate
    formants = _VOWELS[rng.integers(0, len(_VOWELS), n_syl)] * rng.uniform(0.9, 1.15, (n_syl, 1))
    per_sample = np.stack([np.interp(t, centres, formants[:, k]) for k in range(3)], axis=1)  # [n, 3]

    out = np.zeros(n)
    n_harm = int(sample_rate / 2 / (f0 * 1.1))
    for h in range(1, n_harm + 1):
        freq = h * pitch
        # spectral envelope: sum of formant resonances with a -6 dB/octave source tilt
        gain = sum(1.0 / (1.0 + ((freq - per_sample[:, k]) / _BANDWIDTHS[k]) ** 2) for k in range(3)) / h
        out += gain * np.sin(h * phase)
    env = np.sin(np.pi * ((t * syllable_rate) % 1.0)) ** 2  # syllables separated by dips
    out = out / max(float(np.max(np.abs(out))), 1e-9) * (0.1 + 0.9 * env)
    # a consonant at each syllable boundary: a stop (near silence) or a high-passed noise "fricative"
    hiss = np.diff(rng.standard_normal(n + 1))
    for k in range(1, n_syl):
        start = int((k - rng.uniform(0.08, 0.12)) * sample_rate / syllable_rate)
        length = int(rng.uniform(0.05, 0.1) * sample_rate)
        if start < 0 or start + length > n:
            continue
        if rng.random() < 0.5:
            out[start : start + length] *= 0.02
        else:
            out[start : start + length] = 0.15 * hiss[start : start + length] * np.hanning(length)
    return _normalise(out, level)


def pad(audio: np.ndarray, *, before: float, after: float, sample_rate: int = 16000) -> np.ndarray:
    """Surround `audio` with silence, as a VAD segment would."""
    return np.concatenate(
        [
            np.zeros(int(before * sample_rate), np.float32),
            audio,
            np.zeros(int(after * sample_rate), np.float32),
        ]
    )


def _normalise(x: np.ndarray, level: float) -> np.ndarray:
    return (x / max(float(np.max(np.abs(x))), 1e-9) * level).astype(np.float32)
