"""The engine's one worker thread: admission, fairness, batching, supervision.

Requests of one stream (the sentences of a reply) run one after another; the heads of all streams run
together. Each iteration starts new heads (their prompt pass), samples one token for every decoding request and
runs their T3 forward passes as one batch; a request that arrives joins at the next step after its prompt pass,
so a new reply's first chunk waits for at most one chunk of each other stream. Then, when a chunk is full, it is
vocoded together with the other streams' chunks that are nearly full (FLOW_JOIN_FILL), first chunks first: their
flow steps run as one batch (at most MAX_FLOW_BATCH rows), then each chunk's HiFT pass runs and its audio is
delivered at once. Cancellation is checked at every step and between chunks.

Supervision: a step that fails fails its requests; a batched T3 step or flow call that runs out of CUDA memory is
run again in halves (T3 batches stay split). Anything else that goes wrong in an iteration fails the requests
that were running, with a retryable SynthesisError, and the loop goes on. If the thread itself ends unexpectedly,
every pending and later request fails. The Monitor keeps the health and the watchdog.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace

import torch

from .handle import End, SynthesisError
from .health import EngineHealth, Monitor
from .jobs import EngineStats, Job, Request, Synthesis
from .loading import one_line
from .log import logger
from .models import SAMPLE_RATE
from .steps import SPEECH_CODES, DecodeBatch, FlowInput, SynthesisSteps, Utterance

MAX_FLOW_BATCH = 16
"""Most chunks in one flow call; the chunks after them wait for the HiFT passes of these."""
FLOW_JOIN_FILL = 0.75
"""A chunk this full joins a flow call that runs for another stream's full chunk: streams that started a few
token steps apart would otherwise never have a chunk due at the same step."""


class Scheduler:
    """Runs the synthesis steps of all requests on one thread. `name` names the model in messages."""

    def __init__(self, steps: SynthesisSteps, *, name: str, watchdog_timeout: float) -> None:
        self._steps = steps
        self._name = name
        self._requests: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        # stream id -> its requests, oldest first; the head of each stream is running
        self._streams: OrderedDict[str, deque[Job]] = OrderedDict()
        self._batches: list[DecodeBatch] = [steps.new_batch()]
        self._stats = EngineStats()
        self._lock = threading.Lock()
        self._open = 0  # requests submitted and not yet let go of
        self._closed = False
        self._dead: SynthesisError | None = None
        self.monitor = Monitor(watchdog_timeout)
        self._thread = threading.Thread(target=self._serve, name="chatterbox-engine", daemon=True)
        self._thread.start()
        self.monitor.start_watchdog("chatterbox-engine")

    @property
    def closed(self) -> bool:
        """Closed, or the thread died: no request is taken any more."""
        return self._closed

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            return replace(self._stats, voices_prepared=self._steps.voices.prepared)

    def health(self) -> EngineHealth:
        return self.monitor.health(alive=self._thread.is_alive(), queue_depth=self._open)

    def submit(self, request: Request) -> None:
        with self._lock:
            if self._dead is not None:
                raise self._dead
            if self._closed:
                raise SynthesisError(f"Chatterbox engine for {self._name!r} is closed", retryable=False)
            self._stats.submitted += 1
            self._open += 1
            self._requests.put(request)

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._requests.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    try:
                        if not self._admit():
                            break
                        self._iterate()
                    except Exception as e:  # noqa: BLE001 - the loop must go on
                        self._recover(e)
            self._stop(SynthesisError(f"Chatterbox engine for {self._name!r} was closed", retryable=False))
        except BaseException as e:  # noqa: BLE001 - whatever ends the thread, its requests must hear of it
            logger.exception("Chatterbox engine thread for %r died", self._name)
            error = SynthesisError(
                f"Chatterbox engine thread for {self._name!r} died: {one_line(e)}", retryable=False
            )
            with self._lock:
                self._dead, self._closed = error, True
            self._stop(error)

    def _admit(self) -> bool:
        """Move submitted requests to their streams, waiting for one when idle; False once closing."""
        block = not self._streams
        while True:
            try:
                request = self._requests.get(block=block)
            except queue.Empty:
                return True
            if request is None:
                return False
            if request.stream not in self._streams:
                self._streams[request.stream] = deque()
                self._streams.move_to_end(request.stream, last=False)  # a new reply starts first
            self._streams[request.stream].append(Job(request))
            block = False

    def _iterate(self) -> None:
        self._drop_cancelled()
        heads = [jobs[0] for jobs in self._streams.values()]
        for job in heads:
            if not job.started:
                self._start(job)
        self._decode_step([job for job in heads if job.decoding])
        ready = self._ready(heads, fill=1.0)
        if ready:
            ready = self._ready(heads, fill=FLOW_JOIN_FILL)
        # first chunks first: they are what a listener is waiting for
        ready.sort(key=lambda job: job.synthesis is not None and job.synthesis.spoken > 0)
        for first in range(0, len(ready), MAX_FLOW_BATCH):
            live = [job for job in ready[first : first + MAX_FLOW_BATCH] if not self._stopping(job)]
            if live:
                self._vocode(live)
        for stream, jobs in list(self._streams.items()):
            if jobs[0].done:
                jobs.popleft()
            if not jobs:
                del self._streams[stream]
        with self._lock:
            self._stats.active_streams = len(self._streams)
        self.monitor.end_iteration(worked=bool(heads))

    def _recover(self, e: Exception) -> None:
        """After a failure outside a step: fail the requests that were running and start afresh."""
        reason = one_line(e)
        logger.exception("Chatterbox engine loop failed; failing the requests it was running")
        self.monitor.loop_failed(reason)
        error = SynthesisError(f"Chatterbox engine error: {reason}")
        for stream, jobs in list(self._streams.items()):
            for job in jobs:
                if job.started:
                    self._settle(job, error, "failed")
            self._streams[stream] = deque(job for job in jobs if not job.started)
            if not self._streams[stream]:
                del self._streams[stream]
        self._batches = [self._steps.new_batch()]

    def _stop(self, error: SynthesisError) -> None:
        """The thread is ending: fail everything it still holds or that is still queued."""
        self.monitor.stopped(str(error))
        for jobs in self._streams.values():
            for job in jobs:
                self._settle(job, error, "failed")
        self._streams.clear()
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self._settle(Job(request), error, "failed")

    @staticmethod
    def _ready(heads: list[Job], fill: float) -> list[Job]:
        return [job for job in heads if not job.done and job.synthesis and job.synthesis.ready(fill)]

    def _drop_cancelled(self) -> None:
        for stream, jobs in list(self._streams.items()):
            for job in [job for job in jobs if job.request.sink.cancelled]:
                jobs.remove(job)
                self._leave(job)
                self._count("cancelled" if job.started else "dropped")
                self._release(job, max(job.request.sink.cancelled_at, job.worked_until))
            if not jobs:
                del self._streams[stream]

    def _start(self, job: Job) -> None:
        """Run the request's prompt through T3 and let it join the smallest batch."""
        job.started = True
        self._count("started")
        request = job.request
        if not request.text.strip():
            # punc_norm would make Chatterbox say "You need to add some text for me to talk."
            self._settle(job, End(), "completed")
            return
        try:
            with self.monitor.step("prepare"):
                decoder, vocoder = self._steps.prepare(
                    request.text,
                    voice=request.voice,
                    exaggeration=request.exaggeration,
                    params=request.params,
                    seed=request.seed,
                )
        except Exception as e:  # noqa: BLE001 - one failed request must not stop the engine
            self._fail(job, e)
        else:
            job.synthesis = Synthesis(decoder, vocoder, request.chunk_tokens)
            min(self._batches, key=len).add(decoder)
        job.worked_until = time.monotonic()

    def _decode_step(self, jobs: list[Job]) -> None:
        """One token for each decoding job, then one T3 forward pass per batch for those that go on."""
        for job in jobs:
            synthesis = job.synthesis
            assert synthesis is not None
            try:
                with self.monitor.step("sample"):
                    token = self._steps.sample(synthesis.decoder)
            except Exception as e:  # noqa: BLE001
                self._fail(job, e)
                continue
            if token is None:
                self._leave(job)
                synthesis.final = True
                if synthesis.spoken or synthesis.chunk:
                    synthesis.chunk += self._steps.end_tokens()
                continue
            self._count("tokens")
            if token < SPEECH_CODES:
                synthesis.chunk.append(token)
        for batch in list(self._batches):
            if len(batch):
                self._forward(batch)
        self._batches = [batch for batch in self._batches if len(batch)] or [self._steps.new_batch()]
        self._worked(jobs)

    def _forward(self, batch: DecodeBatch) -> None:
        start = time.perf_counter()
        try:
            with self.monitor.step("decode"):
                self._steps.decode(batch)
        except torch.OutOfMemoryError as e:
            if len(batch) == 1:
                self._fail_all(self._jobs_of(batch.members), e)
                return
            first, second = batch.split()
            at = self._batches.index(batch)
            self._batches[at : at + 1] = [first, second]
            self._out_of_memory("T3 step", len(first) + len(second))
            self._forward(first)
            self._forward(second)
        except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, not the engine
            self._fail_all(self._jobs_of(batch.members), e)
        else:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._stats.decode_steps += 1
                self._stats.max_batch = max(self._stats.max_batch, len(batch))
                self._stats.decoded_rows += len(batch)
                self._stats.decode_seconds += elapsed
                self._stats.last_batch = len(batch)
                self._stats.last_step_seconds = elapsed

    def _vocode(self, jobs: list[Job]) -> None:
        """Vocode the chunks of these jobs: their flow steps as one batch, then one by one, HiFT and delivery."""
        rows: list[tuple[Job, FlowInput]] = []
        for job in jobs:
            synthesis = job.synthesis
            assert synthesis is not None
            try:
                with self.monitor.step("flow input"):
                    row = self._steps.flow_input(synthesis.vocoder, synthesis.chunk, final=synthesis.final)
            except Exception as e:  # noqa: BLE001 - one failed request must not stop the engine
                self._fail(job, e)
                continue
            if row is not None:
                rows.append((job, row))
        mels = self._flow(rows) if rows else {}
        if rows:
            self._worked(jobs)
        for job in jobs:
            if not (job.done or self._stopping(job)):
                self._deliver_chunk(job, mels.get(id(job)))

    def _flow(self, rows: list[tuple[Job, FlowInput]]) -> dict[int, torch.Tensor]:
        """The new mel frames of each job's row (by id(job)), from one flow call, or halves if out of memory."""
        try:
            with self.monitor.step("flow"):
                frames = self._steps.flow([row for _, row in rows])
        except torch.OutOfMemoryError as e:
            if len(rows) == 1:
                self._fail_all([rows[0][0]], e)
                return {}
            self._out_of_memory("flow call", len(rows))
            half = len(rows) // 2
            return self._flow(rows[:half]) | self._flow(rows[half:])
        except Exception as e:  # noqa: BLE001 - a failed batch fails its requests, not the engine
            self._fail_all([job for job, _ in rows], e)
            return {}
        with self._lock:
            self._stats.max_flow_batch = max(self._stats.max_flow_batch, len(rows))
        return {id(job): mel for (job, _), mel in zip(rows, frames, strict=True)}

    def _deliver_chunk(self, job: Job, mels: torch.Tensor | None) -> None:
        synthesis, request = job.synthesis, job.request
        assert synthesis is not None
        try:
            with self.monitor.step("vocode"):
                pcm = self._steps.audio(
                    synthesis.vocoder, mels, final=synthesis.final, watermark=request.watermark
                )
        except Exception as e:  # noqa: BLE001
            self._fail(job, e)
            return
        finally:
            job.worked_until = time.monotonic()
        synthesis.next_chunk()
        if pcm:
            with self._lock:
                self._stats.chunks += 1
                self._stats.audio_seconds += len(pcm) / 2 / SAMPLE_RATE
            request.sink.deliver(pcm)
        if synthesis.final:
            self._settle(job, End(), "completed")

    def _out_of_memory(self, what: str, rows: int) -> None:
        self._count("oom_splits")
        logger.warning("Chatterbox %s of %d rows ran out of memory: running it again in halves", what, rows)
        if self._steps.model.device.type == "cuda":
            torch.cuda.empty_cache()

    def _fail_all(self, jobs: Sequence[Job], e: Exception) -> None:
        """A step failed for every request in it."""
        self.monitor.step_failed(one_line(e))
        for job in jobs:
            self._fail(job, e)

    def _fail(self, job: Job, e: Exception) -> None:
        if isinstance(e, torch.OutOfMemoryError) and self._steps.model.device.type == "cuda":
            torch.cuda.empty_cache()
        logger.error("Chatterbox synthesis failed", exc_info=e, extra={"chars": len(job.request.text)})
        error = SynthesisError(f"Chatterbox synthesis failed: {one_line(e)}")
        error.__cause__ = e
        self._settle(job, error, "failed")

    def _settle(self, job: Job, item: End | SynthesisError, counter: str) -> None:
        """The job is over: finished or failed."""
        self._leave(job)
        job.done = True
        self._count(counter)
        self._release(job, time.monotonic(), item)

    def _release(self, job: Job, at: float, item: End | SynthesisError | None = None) -> None:
        """Let go of the job: off the queue depth, then its last item (if any) and release to its sink."""
        if job.released:
            return
        job.released = True
        with self._lock:
            self._open -= 1
        if item is not None:
            job.request.sink.deliver(item)
        job.request.sink.release(at)

    def _leave(self, job: Job) -> None:
        if job.synthesis is None:
            return
        for batch in self._batches:
            if job.synthesis.decoder in batch:
                batch.remove(job.synthesis.decoder)

    def _jobs_of(self, decoders: Sequence[Utterance]) -> list[Job]:
        return [
            job
            for jobs in self._streams.values()
            for job in jobs
            if job.synthesis is not None and any(job.synthesis.decoder is d for d in decoders)
        ]

    def _stopping(self, job: Job) -> bool:
        return job.request.sink.cancelled or self._closed

    def _count(self, name: str, amount: float = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + amount)

    @staticmethod
    def _worked(jobs: list[Job]) -> None:
        now = time.monotonic()
        for job in jobs:
            job.worked_until = now
