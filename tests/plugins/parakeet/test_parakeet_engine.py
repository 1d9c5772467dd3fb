"""ParakeetEngine: shared registry, batching, the event loop staying free, failures and closing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from livekit.plugins import parakeet
from livekit.plugins.parakeet import models, synthetic
from livekit.plugins.parakeet import synthetic_audio as sa
from parakeet_helpers import words

from tests.loop_probe import LoopLagProbe


def slow_down(engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every forward pass take at least `seconds`, as a big model on a busy GPU would."""
    infer = engine._infer

    def slow_infer(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        time.sleep(seconds)
        return infer(clips)

    monkeypatch.setattr(engine, "_infer", slow_infer)


def test_registry_shares_one_engine_per_model_device_dtype(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parakeet.load_engine("synthetic-tiny", device="cpu") is tiny_engine
    assert (
        parakeet.load_engine("synthetic-tiny", device="auto", dtype="bfloat16") is tiny_engine
    )  # cpu, float32
    assert tiny_engine.model_name == "synthetic-tiny"
    assert tiny_engine.device == torch.device("cpu")
    assert tiny_engine.sample_rate == 16000


async def test_transcribes_speech_deterministically(tiny_engine: parakeet.ParakeetEngine) -> None:
    audio = sa.pad(sa.speech_like(1.5), before=0.3, after=0.3)
    first, second = await tiny_engine.transcribe(audio), await tiny_engine.transcribe(audio)
    assert first.text == second.text
    assert words(first.text) and set(words(first.text)) == {synthetic.SYNTHETIC_WORD}
    assert 0.0 < first.confidence <= 1.0
    assert first.audio_duration == pytest.approx(2.1)


async def test_words_for_sound_and_none_for_silence(tiny_engine: parakeet.ParakeetEngine) -> None:
    # synthetic models say one word per 4 encoder frames (320 ms) of sound, and nothing in digital silence
    rng = np.random.default_rng(0)
    for seconds in (0.5, 1.0, 3.0):
        noise = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        assert len(words((await tiny_engine.transcribe(noise)).text)) == int(np.ceil(seconds / 0.32))
        silence = await tiny_engine.transcribe(np.zeros(int(seconds * 16000), np.float32))
        assert silence.text == "" and silence.confidence == 0.0
    # 1 s of sound between 1 s silences: about 1 s worth of words, not 3 s
    padded = sa.pad((0.1 * rng.standard_normal(16000)).astype(np.float32), before=1.0, after=1.0)
    assert 3 <= len(words((await tiny_engine.transcribe(padded)).text)) <= 5


async def test_empty_and_very_short_input(tiny_engine: parakeet.ParakeetEngine) -> None:
    assert (await tiny_engine.transcribe(np.zeros(0, np.float32))).text == ""
    assert (await tiny_engine.transcribe(np.zeros(10, np.float32))).audio_duration == pytest.approx(
        10 / 16000
    )
    with pytest.raises(ValueError, match="mono"):
        await tiny_engine.transcribe(np.zeros((100, 2), np.float32))


async def test_concurrent_requests_are_batched_and_the_loop_stays_free(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = [sa.pad(sa.speech_like(0.6 + 0.5 * i, seed=i), before=0.2, after=0.2) for i in range(5)]
    alone = [(await tiny_engine.transcribe(c)).text for c in clips]
    slow_down(tiny_engine, monkeypatch, 1.0)

    async with LoopLagProbe() as probe:
        results = await asyncio.gather(*(tiny_engine.transcribe(c) for c in clips))

    assert [r.text for r in results] == alone  # padding in a batch does not change any transcript
    assert max(r.batch_size for r in results) > 1
    assert len(probe.gaps) > 50 and probe.max_gap < 0.5  # each forward pass blocks for 1 s, but not the loop


async def test_cancelled_request_is_dropped(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_down(tiny_engine, monkeypatch, 0.5)
    audio = sa.speech_like(1.0)
    running = asyncio.ensure_future(tiny_engine.transcribe(audio))
    await asyncio.sleep(0.1)  # the worker is now busy with `running`
    queued = tiny_engine.submit(audio)
    queued.cancel()
    assert (await running).text
    assert queued.cancelled()


async def test_transcribe_from_another_event_loop(tiny_engine: parakeet.ParakeetEngine) -> None:
    audio = sa.speech_like(1.0)
    result = await asyncio.to_thread(asyncio.run, tiny_engine.transcribe(audio))
    assert words(result.text)


async def test_failing_request_fails_alone(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = sa.speech_like(0.5, seed=99)
    infer = tiny_engine._infer

    def infer_or_fail(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        time.sleep(0.3)  # lets the requests below queue up into one batch
        if any(c is poison for c in clips):
            raise RuntimeError("poisoned input")
        return infer(clips)

    monkeypatch.setattr(tiny_engine, "_infer", infer_or_fail)
    good = [sa.speech_like(1.0, seed=s) for s in range(3)]
    results = await asyncio.gather(
        *(tiny_engine.transcribe(c) for c in [*good, poison]), return_exceptions=True
    )
    assert all(isinstance(r, parakeet.Transcript) and r.text for r in results[:3])
    assert isinstance(results[3], RuntimeError)


async def test_close_fails_pending_work_and_the_registry_reloads(tiny_nemo: Path) -> None:
    engine = parakeet.ParakeetEngine(
        models.load_asr_model(str(tiny_nemo), torch.device("cpu")),
        model_name="private",
        device=torch.device("cpu"),
    )
    assert (await engine.transcribe(sa.speech_like(0.5))).text
    engine.close()
    assert engine.closed
    with pytest.raises(parakeet.EngineClosedError):
        await engine.transcribe(sa.speech_like(0.5))

    by_path = parakeet.load_engine(str(tiny_nemo), device="cpu")  # a registry entry of its own
    by_path.close()
    reloaded = parakeet.load_engine(str(tiny_nemo), device="cpu")
    assert reloaded is not by_path and not reloaded.closed
    assert (await reloaded.transcribe(sa.speech_like(0.5))).text
    reloaded.close()
