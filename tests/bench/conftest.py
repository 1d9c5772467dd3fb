from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings read `.env` from the working directory: benchmarks run where there is none."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
