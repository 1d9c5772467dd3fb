"""One synthetic-tiny Chatterbox engine per test session, loaded through the plugin's own engine cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is unreachable in tests: fail fast

from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox import testing


@pytest.fixture(scope="session")
def engine() -> Iterator[chatterbox.ChatterboxEngine]:
    engine = testing.load_engine("synthetic-tiny", device="cpu")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s voice-like reference clip at 24 kHz."""
    path = tmp_path_factory.mktemp("voices") / "reference.wav"
    sf.write(path, testing.reference_clip(2.0), 24000)
    return path
