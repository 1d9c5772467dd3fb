"""ParakeetEngine (engine.py): shared registry, whole-utterance requests batched off the event loop, failures,
health, warm-up and closing."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing as sa
from parakeet_helpers import private_engine, words

from tests.loop_probe import LoopLagProbe


def slow_down(engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every whole-utterance pass take at least `seconds`, as a big model on a busy GPU would."""
    infer = engine.steps.utterance

    def slow_infer(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        time.sleep(seconds)
        return infer(clips)

    monkeypatch.setattr(engine.steps, "utterance", slow_infer)


def test_registry_shares_one_engine_per_model_device_dtype(
    tiny_engine: parakeet.ParakeetEngine, tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parakeet.load_engine(str(tiny_nemo), device="cpu", name="synthetic-tiny") is tiny_engine
    assert (
        parakeet.load_engine(str(tiny_nemo), device="auto", dtype="bfloat16", name="synthetic-tiny")
        is tiny_engine
    )  # cpu, float32
    assert tiny_engine.model_name == "synthetic-tiny"
    assert tiny_engine.device == torch.device("cpu")
    assert tiny_engine.sample_rate == 16000


async def test_transcribes_speech_deterministically(tiny_engine: parakeet.ParakeetEngine) -> None:
    audio = sa.pad(sa.speech_like(1.5), before=0.3, after=0.3)
    first, second = await tiny_engine.transcribe(audio), await tiny_engine.transcribe(audio)
    assert first.text == second.text
    assert words(first.text) and set(words(first.text)) == {sa.SYNTHETIC_WORD}
    assert 0.0 < first.confidence <= 1.0
    assert first.audio_duration == pytest.approx(2.1)


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
    infer = tiny_engine.steps.utterance

    def infer_or_fail(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        time.sleep(0.3)  # lets the requests below queue up into one batch
        if any(c is poison for c in clips):
            raise RuntimeError("poisoned input")
        return infer(clips)

    monkeypatch.setattr(tiny_engine.steps, "utterance", infer_or_fail)
    good = [sa.speech_like(1.0, seed=s) for s in range(3)]
    results = await asyncio.gather(
        *(tiny_engine.transcribe(c) for c in [*good, poison]), return_exceptions=True
    )
    assert all(isinstance(r, parakeet.Transcript) and r.text for r in results[:3])
    assert isinstance(results[3], RuntimeError) and "poisoned" in str(results[3])
    assert max(r.batch_size for r in results[:3]) > 1  # retried in halves, not one by one


async def test_close_fails_pending_work_and_the_registry_reloads(tiny_nemo: Path) -> None:
    engine = private_engine()
    assert (await engine.transcribe(sa.speech_like(0.5))).text
    assert engine.health().healthy
    engine.close()
    assert engine.closed
    health = engine.health()
    assert (health.alive, health.healthy, health.reason) == (False, False, "STT engine closed")
    with pytest.raises(parakeet.EngineClosedError):
        await engine.transcribe(sa.speech_like(0.5))
    with pytest.raises(parakeet.EngineClosedError):
        engine.tokenizer  # noqa: B018 - the model is released

    by_path = parakeet.load_engine(str(tiny_nemo), device="cpu")  # a registry entry of its own
    by_path.close()
    reloaded = parakeet.load_engine(str(tiny_nemo), device="cpu")
    assert reloaded is not by_path and not reloaded.closed
    assert (await reloaded.transcribe(sa.speech_like(0.5))).text
    reloaded.close()


async def test_health_of_a_serving_engine(tiny_engine: parakeet.ParakeetEngine) -> None:
    await tiny_engine.transcribe(sa.speech_like(0.5))
    health = tiny_engine.health()
    assert health.alive and health.healthy and health.reason == ""
    assert health.consecutive_failures == 0 and health.queue_depth == 0
    assert health.last_step_age is not None and 0 <= health.last_step_age < 60
    assert health.as_dict() == {
        "alive": True,
        "healthy": True,
        "last_step_age": health.last_step_age,
        "queue_depth": 0,
        "consecutive_failures": 0,
        "reason": "",
    }
    with pytest.raises(AttributeError):
        health.healthy = False  # type: ignore[misc]  # frozen


def test_health_before_any_work(tiny_nemo: Path) -> None:
    engine = private_engine()
    try:
        health = engine.health()
        assert health.healthy and health.last_step_age is None
    finally:
        engine.close()


def test_warm_up_that_does_not_finish_is_a_load_error() -> None:
    engine = private_engine(warmup_timeout=0.5)
    release = threading.Event()
    utterance = engine.steps.utterance

    def stuck(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        release.wait(30)
        return utterance(clips)

    engine.steps.utterance = stuck
    try:
        with pytest.raises(parakeet.ModelLoadError) as err:
            engine.warmup()
        message = str(err.value)
        assert "warm-up on cpu did not finish within 0.5 s" in message and "\n" not in message
    finally:
        release.set()
        engine.close()


def test_load_engine_reports_a_warm_up_timeout_and_keeps_no_engine(tiny_nemo: Path) -> None:
    # no forward pass finishes in a microsecond: the warm-up times out, the engine is closed at once
    with pytest.raises(parakeet.ModelLoadError, match=r"warm-up on cpu did not finish within 1e-06 s"):
        parakeet.load_engine(str(tiny_nemo), device="cpu", name="impatient", warmup_timeout=1e-6)
    engine = parakeet.load_engine(str(tiny_nemo), device="cpu", name="impatient")
    try:
        assert engine.health().healthy
    finally:
        engine.close()
