"""The Turbo layout end to end with random weights: GPT-2 T3, no CFG, meanflow S3Gen, byte tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from chatterbox.tts_turbo import punc_norm
from chatterbox_helpers import assert_batched_flow_matches_alone
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox import testing


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def load_warnings() -> list[str]:
    return []


@pytest.fixture(scope="module")
def turbo_engine(load_warnings: list[str]) -> Iterator[chatterbox.ChatterboxEngine]:
    handler = _Messages()
    logging.getLogger("livekit.plugins.chatterbox").addHandler(handler)
    try:
        model = testing.load_model("synthetic-turbo-tiny", device="cpu")
    finally:
        logging.getLogger("livekit.plugins.chatterbox").removeHandler(handler)
    load_warnings.extend(handler.messages)
    engine = chatterbox.ChatterboxEngine(model)
    yield engine
    engine.close()


def test_batched_meanflow_gives_each_row_what_it_gets_alone(
    turbo_engine: chatterbox.ChatterboxEngine,
) -> None:
    assert_batched_flow_matches_alone(turbo_engine, meanflow=True)


async def test_turbo_synthesizes_text_length_audio_plus_tail_silence(
    turbo_engine: chatterbox.ChatterboxEngine,
) -> None:
    text = "Hi there, turbo."
    pcm = np.frombuffer(b"".join([c async for c in turbo_engine.synthesize(text)]), dtype=np.int16)
    tokens = round(testing.TOKENS_PER_CHAR * len(punc_norm(text))) + 3  # Turbo appends 3 silence tokens
    assert len(pcm) == tokens * 960
    assert np.abs(pcm.astype(np.float32)).mean() > 100
    assert turbo_engine.stats.completed == 1


async def test_turbo_rejects_short_reference_voices(
    turbo_engine: chatterbox.ChatterboxEngine, tmp_path: Path
) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, testing.reference_clip(2.0), 24000)
    with pytest.raises(chatterbox.SynthesisError, match="longer than 5 s"):
        async for _ in turbo_engine.synthesize("Hello.", voice=str(short)):
            pass


def test_synthetic_models_warn_loudly(
    turbo_engine: chatterbox.ChatterboxEngine, load_warnings: list[str]
) -> None:
    assert any("RANDOM weights" in message for message in load_warnings), load_warnings
