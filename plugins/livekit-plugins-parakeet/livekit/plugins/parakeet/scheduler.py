"""The scheduler: the one thread that runs all of an engine's torch work.

Batching: each iteration takes up to `max_batch_size` whole-utterance requests into one forward pass, then, when
streams have a chunk ready, runs ONE batched step over them (up to `max_batch_size`, waiting up to `max_wait`
for more to become ready, never when a final is due; under load, chunks pile up while a step runs, so batches
grow by themselves). Fairness: finals first, then the least recently served streams.

Supervision: a failing step is retried in halves (after emptying the CUDA cache when out of memory), so only the
inputs that make it fail get its error. Anything else that fails in an iteration (planning, commit,
detokenizing, a bug) fails that iteration's work with a retryable `EngineError`, and the loop goes on. If the
thread ends all the same, every pending and later call fails with `EngineClosedError`. Watchdog: `health()`
reports a step running past `watchdog_timeout`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .errors import EngineClosedError, EngineError, one_line
from .log import logger
from .results import EngineHealth, EngineStats, Transcript
from .steps import ModelContext, Steps, StreamState
from .stream import EngineStream
from .streaming import StepOutput, StreamStats
from .watchdog import Watchdog

_RECENT_STEPS = 4096
_MAX_BACKOFF = 1.0  # seconds between iterations that keep failing, at most


@dataclass(frozen=True)
class _Request:
    audio: np.ndarray
    future: concurrent.futures.Future[Transcript]


@dataclass(frozen=True)
class _Result:
    value: Any
    """the step's output for one input, or the Exception it failed with"""
    seconds: float
    """duration of the forward pass that gave `value`"""
    batch: int
    """inputs in that pass"""


@dataclass
class _Work:
    """What one iteration took on: the work that fails with it if it fails outside a step."""

    phase: Literal["wait", "requests", "streams"] = "wait"
    requests: list[_Request] = field(default_factory=list)
    streams: list[EngineStream] = field(default_factory=list)


class Scheduler:
    """Serves `steps` on its own thread until `close`. `context` is the model they run (rates, detokenizer)."""

    def __init__(
        self,
        steps: Steps,
        context: ModelContext,
        *,
        name: str,
        max_batch_size: int,
        max_wait: float,
        watchdog_timeout: float,
    ) -> None:
        self.steps = steps
        self._context: ModelContext | None = context
        self._name = name
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._cond = threading.Condition()
        self._requests: collections.deque[_Request] = collections.deque()
        self._streams: dict[EngineStream, None] = {}  # insertion-ordered set
        self._work = _Work()
        self._rounds = 0  # scheduling rounds, for round-robin fairness
        self._closed = False
        self._death = ""  # why the thread died, if it did
        self._steps = 0
        self._compute_seconds = 0.0
        self._stream_inputs = 0
        self._batch_sizes: collections.deque[int] = collections.deque(maxlen=_RECENT_STEPS)
        self._step_seconds: collections.deque[float] = collections.deque(maxlen=_RECENT_STEPS)
        self._watchdog = Watchdog(name, watchdog_timeout)
        self._thread = threading.Thread(target=self._run, name=f"parakeet-engine[{name}]", daemon=True)
        self._thread.start()

    # -- the API the engine and stream handles use (any thread) ---------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._closed

    @property
    def context(self) -> ModelContext:
        """The model served; raises EngineClosedError once the thread has stopped."""
        return self._model()

    @property
    def active_streams(self) -> int:
        with self._cond:
            return len(self._streams)

    def submit(self, audio: np.ndarray) -> concurrent.futures.Future[Transcript]:
        future: concurrent.futures.Future[Transcript] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                future.set_exception(self._stop_error())
            else:
                self._requests.append(_Request(audio, future))
                self._cond.notify()
        return future

    def add_stream(self, stream: EngineStream) -> None:
        with self._cond:
            if self._closed:
                raise self._stop_error()
            self._streams[stream] = None

    def update_stream(self, stream: EngineStream, change: Callable[[StreamState], None]) -> None:
        with self._cond:
            if stream._closed:
                raise RuntimeError("the STT engine stream is closed")
            change(stream._state)
            if stream._state.ready():
                self._cond.notify()

    def close_stream(self, stream: EngineStream) -> None:
        with self._cond:
            self._detach(stream)

    def stream_stats(self, stream: EngineStream) -> StreamStats:
        with self._cond:
            return dataclasses.replace(stream._state.stats)

    def stats(self) -> EngineStats:
        with self._cond:
            return EngineStats(
                self._steps,
                list(self._batch_sizes),
                list(self._step_seconds),
                self._compute_seconds,
                self._stream_inputs,
            )

    def health(self) -> EngineHealth:
        with self._cond:
            return self._watchdog.health(
                alive=self._thread.is_alive() and not self._closed,
                death=self._death,
                queue_depth=len(self._requests) + sum(1 for s in self._streams if s._state.ready()),
            )

    def close(self, timeout: float | None = None) -> None:
        """Fail pending requests and open streams with EngineClosedError, then wait up to `timeout` seconds
        (default: the watchdog timeout) for the step in progress to end."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._fail_all(self._stop_error())
        if threading.current_thread() is not self._thread:
            self._thread.join(self._watchdog.timeout if timeout is None else timeout)
            if self._thread.is_alive():
                logger.warning("STT engine %r closed during a step that is still running", self._name)

    # -- the thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                while self._iterate():
                    pass
        except BaseException as e:  # noqa: BLE001 - the thread must not end silently: report, fail all work
            logger.exception("STT engine %r: the scheduler thread died", self._name)
            with self._cond:
                self._death = f"{type(e).__name__}: {one_line(e)}"
                self._closed = True
        error = self._stop_error()
        self._fail_all(error)
        self._context = None
        self.steps.release(error)

    def _iterate(self) -> bool:
        """One round: up to max_batch_size requests, then one step over ready streams. False once closed."""
        work = _Work()
        try:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._closed:
                    return False
                n = min(len(self._requests), self._max_batch_size)
                work.requests = [self._requests.popleft() for _ in range(n)]
                self._work = work
                self._watchdog.begin()
            self._serve(work)
            self._stream_step(work)
        except Exception as e:  # noqa: BLE001 - supervision: no fault outside a step may stop the thread
            backoff = self._recover(work, e)
        else:
            backoff = 0.0
        finally:
            with self._cond:
                self._watchdog.end(did_work=bool(work.requests or work.streams))
                self._work = _Work()
        time.sleep(backoff)  # a fault that repeats must not spin the thread
        return True

    def _has_work(self) -> bool:
        return self._closed or bool(self._requests) or any(s._state.ready() for s in self._streams)

    def _serve(self, work: _Work) -> None:
        """Whole-utterance requests, in one batch."""
        work.phase = "requests"
        requests = [r for r in work.requests if r.future.set_running_or_notify_cancel()]
        if not requests:
            return
        results = self._isolate([r.audio for r in requests], lambda clips: self.steps.utterance(clips))
        sample_rate = self._model().sample_rate
        self._record(results)
        for r, result in zip(requests, results, strict=True):
            if isinstance(result.value, Exception):
                _settle(r.future, result.value)
            else:
                text, confidence = result.value
                duration = len(r.audio) / sample_rate
                _settle(r.future, Transcript(text, confidence, duration, result.seconds, result.batch))

    def _stream_step(self, work: _Work) -> None:
        """One batched step over the ready streams (none ready: nothing to do)."""
        with self._cond:
            work.phase = "streams"
            ready = self._ready()
            if ready and len(ready) < self._max_batch_size and not any(s._state.flushing for s in ready):
                # more streams may be a few ms from a full chunk: one bigger step is cheaper than two
                # (a flush does not wait: a user is waiting for its final)
                self._cond.wait_for(
                    lambda: (
                        self._closed
                        or any(s._state.flushing for s in self._streams)
                        or len(self._ready()) >= self._max_batch_size
                    ),
                    timeout=self._max_wait,
                )
                ready = self._ready()
            if not ready:
                return
            # finals first (a user is waiting), then the least recently served
            ready.sort(key=lambda s: (not s._state.flushing, s._state.served))
            work.streams = ready[: self._max_batch_size]
            self._rounds += 1
            planned: list[tuple[EngineStream, Any]] = []
            empty_finals: list[EngineStream] = []
            for stream in work.streams:
                stream._state.served = self._rounds
                step = stream._state.plan()
                if step is None:
                    empty_finals.append(stream)
                else:
                    planned.append((stream, step))
        if empty_finals:
            self._record([])
            self._commit([(s, None) for s in empty_finals])
        if not planned:
            return
        results = self._isolate([i for _, i in planned], self._timed_stream_step)
        self._record(results)
        outcomes = [(s, r.value) for (s, _), r in zip(planned, results, strict=True)]
        self._commit([(s, out) for s, out in outcomes if not isinstance(out, Exception)])
        for stream, out in outcomes:
            if isinstance(out, Exception):
                self._end_stream(stream, out)

    def _record(self, results: list[_Result]) -> None:
        """The outcome of a step, for health: failed if every input failed."""
        errors = [r.value for r in results if isinstance(r.value, Exception)]
        with self._cond:
            if results and len(errors) == len(results):
                e = errors[-1]
                self._watchdog.failed(f"a step failed for all its inputs ({type(e).__name__}: {one_line(e)})")
            else:
                self._watchdog.succeeded()

    def _timed_stream_step(self, inputs: list[Any]) -> list[StepOutput]:
        start = time.perf_counter()
        outputs = self.steps.stream(inputs)
        elapsed = time.perf_counter() - start
        with self._cond:
            self._steps += 1
            self._compute_seconds += elapsed
            self._stream_inputs += len(inputs)
            self._batch_sizes.append(len(inputs))
            self._step_seconds.append(elapsed)
        return outputs

    def _isolate(self, inputs: list[Any], step: Callable[[list[Any]], Sequence[Any]]) -> list[_Result]:
        """Run `step` over `inputs`; if it raises, run each half on its own, down to single inputs, so that
        only the inputs that make it fail get the error (out of memory: empty the CUDA cache first)."""
        start = time.perf_counter()
        try:
            outputs = step(inputs)
        except Exception as e:  # noqa: BLE001 - a step's failure is its inputs' or the device's, not ours
            oom = isinstance(e, torch.OutOfMemoryError)
            if oom and self._model().device.type == "cuda":
                torch.cuda.empty_cache()
            if len(inputs) > 1:
                if oom:
                    logger.warning("STT step out of memory for %d inputs: retrying in halves", len(inputs))
                half = (len(inputs) + 1) // 2
                return self._isolate(inputs[:half], step) + self._isolate(inputs[half:], step)
            logger.exception("STT step failed", extra={"model": self._name})
            if oom:
                error = EngineError(f"STT engine {self._name!r} is out of device memory: {one_line(e)}")
                error.__cause__ = e
                return [_Result(error, 0.0, 1)]
            return [_Result(e, 0.0, 1)]
        if len(outputs) != len(inputs):
            raise RuntimeError(f"an STT step returned {len(outputs)} outputs for {len(inputs)} inputs")
        elapsed = time.perf_counter() - start
        return [_Result(o, elapsed, len(inputs)) for o in outputs]

    def _commit(self, results: list[tuple[EngineStream, StepOutput | None]]) -> None:
        model = self._model()
        deliveries = []
        with self._cond:
            for stream, out in results:
                if stream._closed:
                    continue
                update = stream._state.commit(
                    out,
                    sample_rate=model.sample_rate,
                    detokenize=model.detokenize,
                    end_tokens=model.end_tokens,
                )
                if update is not None:
                    deliveries.append((stream, update))
        for stream, update in deliveries:
            _deliver(stream._on_update, update)

    # -- supervision ----------------------------------------------------------------------------------------

    def _recover(self, work: _Work, e: Exception) -> float:
        """An iteration failed outside a step: fail the work it took on, with a retryable error. Before it had
        chosen its streams, the fault may lie with any of them (e.g. a state that cannot say if it is ready).
        Returns how long to wait before the next iteration."""
        logger.exception("STT engine %r: scheduler iteration failed (%s phase)", self._name, work.phase)
        line = f"{type(e).__name__}: {one_line(e)}"
        error = EngineError(f"STT engine {self._name!r} failed ({line}); the stream can be reopened")
        error.__cause__ = e
        with self._cond:
            self._watchdog.failed(line)
            requests = list(work.requests)
            streams = list(work.streams) or (list(self._streams) if work.phase != "requests" else [])
            if work.phase == "wait":
                requests += self._requests
                self._requests.clear()
            for stream in streams:
                self._detach(stream)
            backoff = min(_MAX_BACKOFF, 0.01 * 2 ** min(self._watchdog.failures - 1, 10))
        for r in requests:
            _settle(r.future, error)
        for stream in streams:
            _deliver(stream._on_error, error)
        return backoff

    def _end_stream(self, stream: EngineStream, error: BaseException) -> None:
        with self._cond:
            known = not stream._closed
            self._detach(stream)
        if known:
            _deliver(stream._on_error, error)

    def _fail_all(self, error: EngineClosedError) -> None:
        with self._cond:
            requests = [*self._requests, *self._work.requests]
            self._requests.clear()
            streams = list(self._streams)
            for stream in streams:
                self._detach(stream)
        for r in requests:
            _settle(r.future, error)
        for stream in streams:
            _deliver(stream._on_error, error)

    # -- helpers --------------------------------------------------------------------------------------------

    def _ready(self) -> list[EngineStream]:
        return [s for s in self._streams if s._state.ready()]

    def _detach(self, stream: EngineStream) -> None:
        """Under the lock: the stream leaves the engine."""
        stream._closed = True
        self._streams.pop(stream, None)

    def _model(self) -> ModelContext:
        if self._context is None:
            raise self._stop_error()
        return self._context

    def _stop_error(self) -> EngineClosedError:
        if self._death:
            return EngineClosedError(
                f"STT engine {self._name!r} stopped: its scheduler thread died ({self._death}); see the log"
            )
        return EngineClosedError(f"STT engine {self._name!r} is closed")


def _settle(future: concurrent.futures.Future[Transcript], outcome: Transcript | BaseException) -> None:
    """Set a request's outcome unless it already has one (cancelled, or failed by `close`)."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass


def _deliver(callback: Callable[[Any], None], value: Any) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - a consumer bug (or a closed loop) must not stop the scheduler
        logger.exception("STT stream callback failed")
