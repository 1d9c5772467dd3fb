"""The scheduler (scheduler.py): batched steps shared by streams, closing streams, and supervision: failures
isolated to the streams they hit, faults outside a step, out of memory, a stuck step, a dead thread."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from livekit.agents import APIError
from livekit.plugins import parakeet
from livekit.plugins.parakeet.streaming import StepOutput
from parakeet_helpers import (
    FRAME,
    RATE,
    finish,
    open_stream,
    private_engine,
    push,
    utterance,
    wait_steps,
)


@pytest.fixture(scope="module")
def supervised() -> Iterator[parakeet.ParakeetEngine]:
    """An engine of this module's own, with a short watchdog, for the fault tests."""
    engine = private_engine(watchdog_timeout=1.0)
    yield engine
    engine.close()


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def healthy(engine: parakeet.ParakeetEngine) -> Callable[[], bool]:
    return lambda: engine.health().healthy


async def test_concurrent_streams_share_batched_steps(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_step = tiny_engine.steps.stream

    def slow_step(inputs: list[Any]) -> list[StepOutput]:
        time.sleep(0.05)  # a busy GPU: the others' chunks become ready meanwhile
        return run_step(inputs)

    monkeypatch.setattr(tiny_engine.steps, "stream", slow_step)
    clips = [utterance(0.8 + 0.7 * i, seed=10 + i) for i in range(4)]
    offline = [(await tiny_engine.transcribe(c)).text for c in clips]
    before = tiny_engine.stats()
    steps_before = before.steps
    opened = [open_stream(tiny_engine) for _ in clips]
    for i in range(0, max(len(c) for c in clips), FRAME):  # the streams advance together, in real time order
        for (stream, _), clip in zip(opened, clips, strict=True):
            if i < len(clip):
                stream.push(clip[i : i + FRAME])
        if i % (8 * FRAME) == 0:
            await asyncio.sleep(0.01)
    assert await finish(opened) == offline
    assert len(set(offline)) == len(offline)  # different lengths, different transcripts
    stats = tiny_engine.stats()
    recent = stats.batch_sizes[-(stats.steps - steps_before) :]
    assert max(recent) > 1
    assert sum(recent) == sum(s.stats.steps for s, _ in opened)
    assert stats.stream_inputs - before.stream_inputs == sum(recent)
    assert tiny_engine.active_streams == 0


async def test_closing_a_stream_midway_leaves_the_others_correct(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    clips = [utterance(2.5, seed=20 + i) for i in range(3)]
    offline = [(await tiny_engine.transcribe(c)).text for c in clips]
    opened = [open_stream(tiny_engine) for _ in clips]
    half = len(clips[0]) // 2
    for (stream, _), clip in zip(opened, clips, strict=True):
        push(stream, clip[:half])
    victim, victim_listener = opened[1]
    await wait_steps(victim, 1)
    victim.close()
    assert tiny_engine.active_streams == 2
    with pytest.raises(RuntimeError, match="closed"):
        victim.push(clips[1][half:])
    for stream, clip in [(opened[0][0], clips[0]), (opened[2][0], clips[2])]:
        push(stream, clip[half:])
        stream.flush()
    for i in (0, 2):
        await opened[i][1].wait_final()
        opened[i][0].close()

    assert [opened[i][1].finals[0].text for i in (0, 2)] == [offline[0], offline[2]]
    assert not victim_listener.finals and not victim_listener.errors


async def test_a_failing_step_fails_only_its_stream(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = utterance(2.0, seed=30)
    poison[RATE // 2] = 0.987654  # a marker the failing step recognises in its window
    run_step = tiny_engine.steps.stream

    def step_or_fail(inputs: list[Any]) -> list[StepOutput]:
        time.sleep(0.02)
        if any(np.any(i.audio == np.float32(0.987654)) for i in inputs):
            raise RuntimeError("kernel exploded")
        return run_step(inputs)

    monkeypatch.setattr(tiny_engine.steps, "stream", step_or_fail)
    good = [utterance(2.0, seed=31 + i) for i in range(2)]
    offline = [(await tiny_engine.transcribe(c)).text for c in good]
    opened = [open_stream(tiny_engine) for _ in range(3)]
    for (stream, _), clip in zip(opened, [good[0], poison, good[1]], strict=True):
        push(stream, clip)
    for stream, _ in opened:
        stream.flush()
    await opened[1][1].wait_error()
    for i in (0, 2):
        await opened[i][1].wait_final()
        opened[i][0].close()

    assert [opened[i][1].finals[0].text for i in (0, 2)] == offline
    assert "kernel exploded" in str(opened[1][1].errors[0]) and not opened[1][1].finals
    assert tiny_engine.active_streams == 0  # the failed stream left the engine
    # the engine goes on serving new streams
    stream, listener = open_stream(tiny_engine)
    push(stream, good[0])
    stream.flush()
    await listener.wait_final()
    stream.close()
    assert listener.finals[0].text == offline[0]


async def test_closing_the_engine_fails_open_streams() -> None:
    engine = private_engine()
    stream, listener = open_stream(engine)
    push(stream, utterance(1.0, seed=1))
    engine.close()
    await listener.wait_error()
    assert isinstance(listener.errors[0], parakeet.EngineClosedError)
    with pytest.raises(parakeet.EngineClosedError):
        open_stream(engine)


# -- supervision ----------------------------------------------------------------------------------------------


async def test_a_fault_outside_a_step_fails_its_streams_and_the_engine_goes_on(
    supervised: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    armed = threading.Event()
    armed.set()
    step = supervised.steps.stream

    def bad_tokens(inputs: list[Any]) -> list[StepOutput]:
        outputs = step(inputs)
        if not armed.is_set():
            return outputs
        # a token the vocabulary does not have: detokenizing it in the scheduler's commit raises
        return [dataclasses.replace(o, tokens=[*o.tokens, 10**6]) for o in outputs]

    monkeypatch.setattr(supervised.steps, "stream", bad_tokens)
    idle, idle_listener = open_stream(supervised)  # no audio: not part of any step
    opened = [open_stream(supervised) for _ in range(2)]
    for (stream, _), seed in zip(opened, (1, 2), strict=True):
        push(stream, utterance(1.0, seed=seed))
    for stream, listener in opened:
        await listener.wait(lambda listener=listener: bool(listener.errors), timeout=5.0)
        error = listener.errors[0]
        assert isinstance(error, parakeet.EngineError) and isinstance(error, APIError)
        assert error.retryable and "IndexError" in str(error) and "\n" not in str(error)
        assert stream.closed
        with pytest.raises(RuntimeError, match="closed"):
            stream.push(np.zeros(FRAME, np.float32))
    health = supervised.health()
    assert health.alive and not health.healthy and health.consecutive_failures >= 1
    assert "IndexError" in health.reason and "\n" not in health.reason

    armed.clear()
    clip = utterance(1.3, seed=3)
    offline = (await supervised.transcribe(clip)).text
    await until(healthy(supervised))  # a good iteration ends the failure streak
    assert supervised.health().consecutive_failures == 0
    fresh, listener = open_stream(supervised)
    for stream in (fresh, idle):
        push(stream, clip)
        stream.flush()
    assert await finish([(fresh, listener), (idle, idle_listener)]) == [offline, offline]
    assert not idle_listener.errors


async def test_a_fault_outside_a_step_fails_its_requests(
    supervised: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    utterance_step = supervised.steps.utterance
    monkeypatch.setattr(supervised.steps, "utterance", lambda clips: [])  # no output for any input
    with pytest.raises(parakeet.EngineError, match="returned 0 outputs for 1 inputs") as err:
        await asyncio.wait_for(supervised.transcribe(utterance(0.5, seed=4)), 5.0)
    assert err.value.retryable
    assert not supervised.health().healthy
    monkeypatch.setattr(supervised.steps, "utterance", utterance_step)
    assert (await supervised.transcribe(utterance(0.5, seed=4))).text
    assert supervised.health().healthy


async def test_a_stuck_step_is_reported_by_the_watchdog(
    supervised: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    entered = threading.Event()
    step = supervised.steps.stream

    def stuck(inputs: list[Any]) -> list[StepOutput]:
        entered.set()
        release.wait(60)
        return step(inputs)

    monkeypatch.setattr(supervised.steps, "stream", stuck)
    clip = utterance(1.0, seed=5)
    offline = (await supervised.transcribe(clip)).text
    stream, listener = open_stream(supervised)
    push(stream, clip)
    stream.flush()
    try:
        await until(lambda: not supervised.health().healthy)  # past the 1 s watchdog
        health = supervised.health()
        assert entered.is_set() and health.alive and health.consecutive_failures == 0
        assert health.reason.startswith("STT step running for ") and "(watchdog 1 s)" in health.reason
    finally:
        release.set()
    await listener.wait_final()
    stream.close()
    assert listener.finals[0].text == offline and not listener.errors
    await until(healthy(supervised))


async def test_out_of_memory_on_a_batch_is_retried_in_halves(
    supervised: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    attempts: list[int] = []
    step = supervised.steps.stream

    def fits_one(inputs: list[Any]) -> list[StepOutput]:
        gate.wait(30)  # holds the first step until every stream has audio: the next one batches them
        attempts.append(len(inputs))
        if len(inputs) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return step(inputs)

    clips = [utterance(0.9 + 0.4 * i, seed=60 + i) for i in range(4)]
    offline = [(await supervised.transcribe(c)).text for c in clips]
    steps_before = supervised.stats().steps
    monkeypatch.setattr(supervised.steps, "stream", fits_one)
    opened = [open_stream(supervised) for _ in clips]
    for (stream, _), clip in zip(opened, clips, strict=True):
        push(stream, clip)
    gate.set()
    assert await finish(opened) == offline
    assert max(attempts) > 1 and not any(listener.errors for _, listener in opened)
    stats = supervised.stats()
    assert set(stats.batch_sizes[-(stats.steps - steps_before) :]) == {1}  # only the halves that fit ran
    await until(healthy(supervised))


async def test_a_stream_out_of_memory_alone_fails_retryably(
    supervised: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = utterance(1.5, seed=70)
    poison[RATE // 2] = 0.987654  # a marker the failing step recognises in its window
    step = supervised.steps.stream

    def oom_on_poison(inputs: list[Any]) -> list[StepOutput]:
        if any(np.any(i.audio == np.float32(0.987654)) for i in inputs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return step(inputs)

    monkeypatch.setattr(supervised.steps, "stream", oom_on_poison)
    good = utterance(1.5, seed=71)
    offline = (await supervised.transcribe(good)).text
    (victim, victim_listener), survivor = open_stream(supervised), open_stream(supervised)
    push(victim, poison)
    push(survivor[0], good)
    victim.flush()
    await victim_listener.wait_error()
    error = victim_listener.errors[0]
    assert isinstance(error, parakeet.EngineError) and error.retryable
    assert "out of device memory" in str(error)
    survivor[0].flush()
    assert await finish([survivor]) == [offline]


async def test_a_dead_thread_fails_every_pending_and_later_call(caplog: pytest.LogCaptureFixture) -> None:
    class Fatal(BaseException):  # what the iteration's supervision does not catch
        pass

    engine = private_engine()

    def fatal(inputs: list[Any]) -> list[StepOutput]:
        raise Fatal("the interpreter is going away")

    engine.steps.stream = fatal
    stream, listener = open_stream(engine)
    with caplog.at_level(logging.ERROR, logger="livekit.plugins.parakeet"):
        push(stream, utterance(1.0, seed=8))
        await listener.wait_error()
        await until(lambda: not engine.health().alive)
    error = listener.errors[0]
    assert isinstance(error, parakeet.EngineClosedError) and "scheduler thread died (Fatal: " in str(error)
    health = engine.health()
    assert not health.healthy and health.reason.startswith("STT engine scheduler thread died: Fatal")
    assert engine.closed
    died = [r for r in caplog.records if "scheduler thread died" in r.getMessage()]
    assert died and died[0].exc_info is not None  # logged with the traceback
    with pytest.raises(parakeet.EngineClosedError, match="scheduler thread died"):
        await engine.transcribe(utterance(0.5, seed=9))
    with pytest.raises(parakeet.EngineClosedError, match="scheduler thread died"):
        open_stream(engine)
    engine.close()  # closing a dead engine is harmless
