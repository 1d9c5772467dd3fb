"""The `testing` subpackage: synthetic models built once into the cache, their names, the random-weights
warning, and what they say (one word per 320 ms of sound) once loaded like any local .nemo file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing
from parakeet_helpers import words


def test_synthetic_model_is_built_once_into_the_cache(synthetic_cache: Path, tiny_nemo: Path) -> None:
    assert tiny_nemo.parent == synthetic_cache and tiny_nemo.suffix == ".nemo"
    mtime = tiny_nemo.stat().st_mtime_ns
    assert testing.ensure_synthetic_model("synthetic-tiny") == tiny_nemo
    assert tiny_nemo.stat().st_mtime_ns == mtime
    assert not list(synthetic_cache.glob("*.part"))


def test_random_weights_are_announced(tiny_nemo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="livekit.plugins.parakeet"):
        testing.ensure_synthetic_model("synthetic-tiny")
    assert any("RANDOM WEIGHTS" in r.getMessage() for r in caplog.records)


def test_unknown_synthetic_name_is_a_load_error(synthetic_cache: Path) -> None:
    with pytest.raises(parakeet.ModelLoadError, match="unknown synthetic STT model 'synthetic-huge'") as err:
        testing.ensure_synthetic_model("synthetic-huge")
    assert "synthetic-tiny" in str(err.value) and "\n" not in str(err.value)


async def test_words_for_sound_and_none_for_silence(tiny_engine: parakeet.ParakeetEngine) -> None:
    assert tiny_engine.tokenizer.text_to_ids(testing.SYNTHETIC_WORD)
    rng = np.random.default_rng(0)
    for seconds in (0.5, 1.0, 3.0):
        noise = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        assert len(words((await tiny_engine.transcribe(noise)).text)) == int(np.ceil(seconds / 0.32))
        silence = await tiny_engine.transcribe(np.zeros(int(seconds * 16000), np.float32))
        assert silence.text == "" and silence.confidence == 0.0
    # 1 s of sound between 1 s silences: about 1 s worth of words, not 3 s
    padded = testing.pad((0.1 * rng.standard_normal(16000)).astype(np.float32), before=1.0, after=1.0)
    assert 3 <= len(words((await tiny_engine.transcribe(padded)).text)) <= 5
