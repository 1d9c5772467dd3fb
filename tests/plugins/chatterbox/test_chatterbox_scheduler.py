"""Supervision of the engine's worker thread, with faults injected through its SynthesisSteps: a failure outside
a step, a stuck step, CUDA out of memory, the thread dying, a warm-up that never ends; and what health() says."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from chatterbox_helpers import expected_seconds
from livekit.agents import APIConnectOptions, APIError, tts
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox.steps import DecodeBatch, FlowInput
from torch import Tensor


class Fatal(BaseException):
    """Not an Exception: nothing in the worker loop catches it."""


class FaultySteps(chatterbox.SynthesisSteps):
    """The real steps, with faults the test switches on (from its own thread)."""

    def __init__(self, model: chatterbox.LoadedModel) -> None:
        super().__init__(model)
        self.unusable_flows = 0
        """flow calls that return no frames at all: a result the scheduler cannot use, outside any step"""
        self.unusable_at = 0.0
        self.gate = threading.Event()
        """decode waits for it"""
        self.gate.set()
        self.oom_above: int | None = None
        """decode and flow raise torch.OutOfMemoryError for more rows than this"""
        self.fatal = False
        self.decode_sizes: list[int] = []
        self.flow_sizes: list[int] = []

    def decode(self, batch: DecodeBatch) -> None:
        self.gate.wait()
        if self.fatal:
            raise Fatal("injected")
        self._maybe_out_of_memory(len(batch))
        self.decode_sizes.append(len(batch))
        super().decode(batch)

    def flow(self, rows: Sequence[FlowInput]) -> list[Tensor]:
        if self.unusable_flows:
            self.unusable_flows -= 1
            self.unusable_at = time.monotonic()
            return []
        self._maybe_out_of_memory(len(rows))
        self.flow_sizes.append(len(rows))
        return super().flow(rows)

    def _maybe_out_of_memory(self, rows: int) -> None:
        if self.oom_above is not None and rows > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")


@pytest.fixture
async def faulty(engine: chatterbox.ChatterboxEngine) -> AsyncIterator[chatterbox.ChatterboxEngine]:
    """An engine of its own on the session's model, with FaultySteps and a short watchdog."""
    faulty = chatterbox.ChatterboxEngine(engine.model, steps=FaultySteps(engine.model), watchdog_timeout=2.0)
    yield faulty
    steps(faulty).gate.set()
    await asyncio.to_thread(faulty.close)


def steps(engine: chatterbox.ChatterboxEngine) -> FaultySteps:
    assert isinstance(engine.steps, FaultySteps)
    return engine.steps


async def collect(handle: chatterbox.SynthesisHandle) -> np.ndarray:
    return np.frombuffer(b"".join([chunk async for chunk in handle]), dtype=np.int16)


async def failure_of(handle: chatterbox.SynthesisHandle) -> tuple[chatterbox.SynthesisError, float]:
    """The error the handle raises, and when it did."""
    with pytest.raises(chatterbox.SynthesisError) as info:
        await collect(handle)
    return info.value, time.monotonic()


async def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_health_has_the_fields_the_app_reads(faulty: chatterbox.ChatterboxEngine) -> None:
    health = faulty.health()
    assert [field.name for field in dataclasses.fields(health)] == [
        "alive",
        "healthy",
        "last_step_age",
        "queue_depth",
        "consecutive_failures",
        "reason",
    ]
    assert health == chatterbox.EngineHealth(True, True, None, 0, 0, "")  # nothing done yet
    with pytest.raises(dataclasses.FrozenInstanceError):
        health.healthy = False  # type: ignore[misc]
    assert json.loads(json.dumps(health.as_dict()))["healthy"] is True


async def test_a_failure_outside_a_step_fails_the_running_requests_and_the_loop_goes_on(
    faulty: chatterbox.ChatterboxEngine,
) -> None:
    steps(faulty).unusable_flows = 1
    texts = ["The first reply is cut short.", "So is the second."]
    failures = await asyncio.gather(*(failure_of(faulty.synthesize(text)) for text in texts))

    for error, failed_at in failures:
        assert error.retryable and "ValueError" in str(error) and "\n" not in str(error)
        assert failed_at - steps(faulty).unusable_at < 1.0
    health = faulty.health()
    assert (health.alive, health.healthy, health.consecutive_failures) == (True, False, 1)
    assert "ValueError" in health.reason and health.queue_depth == 0, health

    text = "The engine still speaks."
    assert len(await collect(faulty.synthesize(text))) / 24000 == pytest.approx(expected_seconds(text))
    health = faulty.health()
    assert (health.healthy, health.consecutive_failures, health.reason) == (True, 0, "")
    assert health.last_step_age is not None and health.last_step_age >= 0
    assert faulty.stats.failed == 2 and faulty.stats.completed == 1


async def test_livekit_retries_a_reply_that_failed_outside_a_step(
    faulty: chatterbox.ChatterboxEngine,
) -> None:
    steps(faulty).unusable_flows = 1
    plugin_tts = chatterbox.TTS(engine=faulty)
    errors: list[tts.TTSError] = []
    plugin_tts.on("error", errors.append)
    options = APIConnectOptions(max_retry=1, retry_interval=0.1)
    frames = [
        event.frame async for event in plugin_tts.synthesize("Said on the second try.", conn_options=options)
    ]

    assert sum(frame.samples_per_channel for frame in frames) > 0
    # livekit reports it from both layers of synthesize() (a ChunkedStream over a stream); the outer retried
    assert errors and any(error.recoverable for error in errors)
    for error in errors:
        assert isinstance(error.error, APIError) and error.error.retryable


async def test_a_stuck_step_is_reported_until_it_ends(faulty: chatterbox.ChatterboxEngine) -> None:
    steps(faulty).gate.clear()
    text = "Stuck for a while."
    handle = faulty.synthesize(text)
    await wait_until(lambda: not faulty.health().healthy)
    health = faulty.health()
    assert health.alive and health.queue_depth == 1 and health.consecutive_failures == 0
    assert health.reason.startswith("TTS step running for ") and "(decode)" in health.reason

    steps(faulty).gate.set()
    assert len(await collect(handle)) / 24000 == pytest.approx(expected_seconds(text))
    assert faulty.health().healthy


async def test_out_of_memory_runs_batched_steps_in_halves(faulty: chatterbox.ChatterboxEngine) -> None:
    steps(faulty).oom_above = 1
    texts = ["Three replies at once.", "They do not fit together.", "So they run one by one."]
    replies = await asyncio.gather(*(collect(faulty.synthesize(text)) for text in texts))

    for text, pcm in zip(texts, replies, strict=True):
        assert len(pcm) / 24000 == pytest.approx(expected_seconds(text))
    assert faulty.stats.oom_splits >= 2  # three rows: halves of one and two, then the two
    assert max(steps(faulty).decode_sizes) == 1 and max(steps(faulty).flow_sizes) == 1
    assert faulty.stats.failed == 0 and faulty.health().healthy


async def test_a_request_that_runs_out_of_memory_alone_fails_retryably(
    faulty: chatterbox.ChatterboxEngine,
) -> None:
    steps(faulty).oom_above = 0
    error, _ = await failure_of(faulty.synthesize("Too big even alone."))
    assert error.retryable and "OutOfMemoryError" in str(error)
    assert faulty.health().consecutive_failures == 1

    steps(faulty).oom_above = None
    assert len(await collect(faulty.synthesize("Memory is back."))) > 0
    assert faulty.health().healthy


async def test_a_dead_thread_fails_every_request_clearly(
    faulty: chatterbox.ChatterboxEngine, caplog: pytest.LogCaptureFixture
) -> None:
    steps(faulty).gate.clear()
    running = faulty.synthesize("This one is running when the thread dies.", stream="reply")
    queued = faulty.synthesize("This one waits for it.", stream="reply")
    await wait_until(lambda: faulty.stats.started == 1)
    with caplog.at_level(logging.ERROR, logger="livekit.plugins.chatterbox"):
        steps(faulty).fatal = True
        steps(faulty).gate.set()
        for handle in (running, queued):
            error, _ = await failure_of(handle)
            assert "died" in str(error) and "Fatal" in str(error) and not error.retryable

    health = faulty.health()
    assert (health.alive, health.healthy) == (False, False) and "died" in health.reason
    assert faulty.closed
    with pytest.raises(chatterbox.SynthesisError, match="died"):
        faulty.synthesize("Too late.")
    [record] = [r for r in caplog.records if "died" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is Fatal


def test_warmup_gives_up_after_its_timeout(engine: chatterbox.ChatterboxEngine) -> None:
    stuck = FaultySteps(engine.model)
    stuck.gate.clear()
    slow = chatterbox.ChatterboxEngine(engine.model, steps=stuck, warmup_timeout=0.5)
    try:
        with pytest.raises(chatterbox.ModelLoadError) as info:
            slow.warmup()
        message = str(info.value)
        assert "did not finish within 0.5 s" in message and "\n" not in message
    finally:
        stuck.gate.set()
        slow.close()
