"""Server-side echo cancellation: the agent's own voice, sent back by the caller, is removed."""

from __future__ import annotations

import numpy as np
from livekit.plugins.parakeet.testing import speech_like

from agent.embedded.echo import EchoCanceller

PACKET = 960  # 20 ms at 48 kHz


def _energy(pcm: bytes) -> float:
    return float(np.abs(np.frombuffer(pcm, np.int16).astype(np.int32)).mean())


def test_the_agents_voice_coming_back_at_minus_10_db_is_cancelled() -> None:
    voice = (speech_like(8.0, sample_rate=48000, seed=3) * 20000).astype(np.int16)
    echo = EchoCanceller()
    heard_raw, heard_clean = [], []
    for start in range(0, len(voice) - PACKET, PACKET):
        packet = voice[start : start + PACKET].tobytes()
        echo.played(packet)
        back = (voice[start : start + PACKET] * 10 ** (-10 / 20)).astype(np.int16).tobytes()
        heard_raw.append(_energy(back))
        heard_clean.append(_energy(echo.clean(back)))
    settled = slice(len(heard_raw) // 2, None)  # once AEC3 has converged
    assert np.mean(heard_clean[settled]) < 0.25 * np.mean(heard_raw[settled])


def test_the_callers_voice_alone_passes() -> None:
    canceller = EchoCanceller()
    voice = (speech_like(4.0, sample_rate=48000, seed=5) * 20000).astype(np.int16)
    silence = bytes(2 * PACKET)
    out_energy, in_energy = [], []
    for start in range(0, len(voice) - PACKET, PACKET):
        canceller.played(silence)  # the agent is quiet
        packet = voice[start : start + PACKET].tobytes()
        cleaned = canceller.clean(packet)
        assert len(cleaned) == len(packet)
        in_energy.append(_energy(packet))
        out_energy.append(_energy(cleaned))
    assert np.mean(out_energy[50:]) > 0.5 * np.mean(in_energy[50:])
