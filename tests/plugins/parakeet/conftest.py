"""One synthetic-tiny Parakeet engine per test session, built into a temporary cache by the plugin's `testing`
builders and loaded through the product's own loader (the .nemo restore path)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is unreachable in tests: fail fast

from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("parakeet-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(testing.CACHE_DIR_ENV, str(cache))
        yield cache


@pytest.fixture(scope="session")
def tiny_nemo(synthetic_cache: Path) -> Path:
    return testing.ensure_synthetic_model("synthetic-tiny")


@pytest.fixture(scope="session")
def tiny_engine(tiny_nemo: Path) -> parakeet.ParakeetEngine:
    return parakeet.load_engine(str(tiny_nemo), device="cpu", name="synthetic-tiny")
