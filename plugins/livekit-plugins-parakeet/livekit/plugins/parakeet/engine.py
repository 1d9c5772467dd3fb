"""The inference engine: one model on one device, served by one scheduler thread to any number of sessions.

The thread serves two kinds of work: whole-utterance requests (`transcribe`/`submit`, batched into one
forward pass) and live streams (`open_stream`): whenever streams have a chunk ready, it runs ONE batched
encoder + decoder step over all of them (up to `max_batch_size`, waiting up to `max_wait` for more to become
ready), each stream keeping its own audio window and decoder state between steps (see streaming.py).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import synthetic_audio
from .cache_aware import CacheAwareInput, CacheAwareState, chunking_of, is_cache_aware
from .log import logger
from .models import (
    DEFAULT_MODEL,
    ModelLoadError,
    end_of_utterance_ids,
    load_asr_model,
    resolve_device,
    resolve_dtype,
)
from .streaming import StepInput, StepOutput, StreamingConfig, StreamState, StreamStats, StreamUpdate

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTModel

_MIN_SECONDS = 0.1  # shorter input is zero-padded: the mel front end needs a few STFT windows
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_MAX_WAIT = 0.02


class EngineClosedError(RuntimeError):
    """The engine was closed; it accepts no more work."""


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float
    """mean word confidence in [0, 1]; 0.0 when `text` is empty"""
    audio_duration: float
    """seconds of audio transcribed"""
    inference_time: float
    """seconds spent on the batch this utterance was part of"""
    batch_size: int


@dataclass(frozen=True)
class EngineStats:
    steps: int
    """streaming steps (batched forward passes) run since the engine started"""
    batch_sizes: list[int]
    """streams per step, for the most recent steps (oldest first)"""
    step_seconds: list[float]
    """duration of each of those steps"""
    compute_seconds: float
    """total duration of all streaming steps"""


@dataclass(frozen=True)
class _Request:
    audio: np.ndarray
    future: concurrent.futures.Future[Transcript]


_RECENT_STEPS = 4096


class EngineStream:
    """A live stream on the engine. `push` audio (float32 mono at the engine's rate) and `flush` to end a
    segment; `on_update` receives interim and final `StreamUpdate`s and `on_error` a failure that ended the
    stream, both called from the engine thread. All methods are thread-safe and non-blocking."""

    def __init__(
        self,
        engine: ParakeetEngine,
        state: StreamState,
        on_update: Callable[[StreamUpdate], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._engine = engine
        self._state = state
        self._on_update = on_update
        self._on_error = on_error
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, pcm: np.ndarray) -> None:
        audio = np.asarray(pcm, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono PCM (1-D array), got shape {audio.shape}")
        self._engine._update_stream(self, lambda s: s.push(audio))

    def flush(self) -> None:
        """End the current segment: its final arrives after one step over the audio not yet decoded."""
        self._engine._update_stream(self, StreamState.flush)

    def close(self) -> None:
        """Leave the engine at once, freeing the stream's slot; callbacks stop (one already running ends)."""
        self._engine._close_stream(self)

    @property
    def stats(self) -> StreamStats:
        with self._engine._cond:
            return dataclasses.replace(self._state.stats)


class ParakeetEngine:
    """Owns one NeMo transducer model on one device. All torch work runs on a dedicated scheduler thread,
    which batches pending requests and ready streams; callers only enqueue and await.

    `max_batch_size` bounds the utterances or streams in one forward pass; `max_wait` is how long a step
    waits for more streams to have a chunk ready (never when a final is due; under load, chunks pile up
    while a step runs, so batches grow by themselves); `streaming` is the default window configuration of
    buffered streams; `att_context_size` ([left, right] encoder frames, one of the model's
    `encoder.att_context_size_all`) selects the look-ahead of a cache-aware model. A model whose vocabulary
    has end-of-utterance tokens (`models.END_OF_UTTERANCE_TOKENS`) ends a stream's utterance where it emits
    one; they never appear in text."""

    def __init__(
        self,
        model: EncDecRNNTModel,
        *,
        model_name: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait: float = DEFAULT_MAX_WAIT,
        streaming: StreamingConfig | None = None,
        att_context_size: tuple[int, int] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_wait < 0:
            raise ValueError(
                f"max_batch_size must be >= 1 and max_wait >= 0 (got {max_batch_size}, {max_wait})"
            )
        if att_context_size is not None:
            if not is_cache_aware(model):
                raise ValueError("att_context_size applies to cache-aware streaming models only")
            choices = [list(c) for c in model.encoder.att_context_size_all]
            if list(att_context_size) not in choices:
                raise ValueError(
                    f"att_context_size {list(att_context_size)} is not one of the model's {choices}"
                )
            model.encoder.set_default_att_context_size(list(att_context_size))
        self._model: EncDecRNNTModel | None = model
        self._sample_rate = int(model.cfg.sample_rate)
        # one encoder frame: the mel hop times the encoder's subsampling
        self._frame_seconds = float(model.cfg.preprocessor.window_stride) * int(
            model.encoder.subsampling_factor
        )
        self._model_name = model_name
        self._device = device
        self._dtype = dtype
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._streaming = streaming or StreamingConfig()
        # cache-aware models stream natively (their chunking comes from the encoder); others are buffered
        self._chunking = chunking_of(model) if is_cache_aware(model) else None
        self._end_tokens = end_of_utterance_ids(model.tokenizer)
        self._cond = threading.Condition()
        self._requests: collections.deque[_Request] = collections.deque()
        self._streams: dict[EngineStream, None] = {}  # insertion-ordered set
        self._rounds = 0  # scheduling rounds, for round-robin fairness
        self._steps = 0
        self._compute_seconds = 0.0
        self._batch_sizes: collections.deque[int] = collections.deque(maxlen=_RECENT_STEPS)
        self._step_seconds: collections.deque[float] = collections.deque(maxlen=_RECENT_STEPS)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"parakeet-engine[{model_name}]", daemon=True)
        self._thread.start()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def frame_seconds(self) -> float:
        """duration of one encoder frame (80 ms for Parakeet)"""
        return self._frame_seconds

    @property
    def tokenizer(self) -> Any:
        """The model's NeMo tokenizer: its `ids_to_text` makes the text of every transcript, streamed or not."""
        model = self._model
        if model is None:
            raise self._closed_error()
        return model.tokenizer

    @property
    def active_streams(self) -> int:
        with self._cond:
            return len(self._streams)

    def describe(self) -> str:
        """Model family, rates and chunking, for logs."""
        head = f"{type(self._model).__name__}, {self._sample_rate} Hz, {self._frame_seconds * 1000:.0f} ms frames"
        if self._chunking is not None:
            c = self._chunking
            return (
                f"{head}, cache-aware streaming: att_context_size {self._model.encoder.att_context_size}, "  # type: ignore[union-attr]
                f"chunks of {c.shift * c.hop / self._sample_rate:.2f} s"
            )
        w = self._streaming
        return f"{head}, buffered streaming: left/chunk/right {w.left:.2f}/{w.chunk:.2f}/{w.right:.2f} s"

    @property
    def family(self) -> str:
        """``cache-aware`` (native streaming encoder) or ``buffered`` (offline-trained TDT/RNNT)"""
        return "buffered" if self._chunking is None else "cache-aware"

    @property
    def streaming_config(self) -> StreamingConfig:
        return self._streaming

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @property
    def max_wait(self) -> float:
        return self._max_wait

    def stats(self) -> EngineStats:
        with self._cond:
            return EngineStats(
                self._steps, list(self._batch_sizes), list(self._step_seconds), self._compute_seconds
            )

    async def transcribe(self, pcm: np.ndarray) -> Transcript:
        """Transcribe one utterance: float32 mono PCM in [-1, 1] at `sample_rate` (16 kHz for Parakeet).
        Usable from any event loop."""
        return await asyncio.wrap_future(self.submit(pcm))

    def submit(self, pcm: np.ndarray) -> concurrent.futures.Future[Transcript]:
        """Thread-safe, non-blocking form of `transcribe`. Cancelling the future drops the request if it has
        not started yet."""
        audio = np.asarray(pcm, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono PCM (1-D array), got shape {audio.shape}")
        future: concurrent.futures.Future[Transcript] = concurrent.futures.Future()
        if audio.size == 0:
            future.set_result(Transcript("", 0.0, 0.0, 0.0, 0))
            return future
        with self._cond:
            if self._closed:
                future.set_exception(self._closed_error())
            else:
                self._requests.append(_Request(audio, future))
                self._cond.notify()
        return future

    def open_stream(
        self,
        on_update: Callable[[StreamUpdate], None],
        on_error: Callable[[BaseException], None],
        config: StreamingConfig | None = None,
    ) -> EngineStream:
        """Start a live stream (buffered models: windows from `config`, else the engine's default; cache-aware
        models: the encoder's chunking). Raises EngineClosedError."""
        state: StreamState = (
            CacheAwareState.for_chunking(self._chunking)
            if self._chunking is not None
            else StreamState.create(
                config or self._streaming, sample_rate=self._sample_rate, frame_seconds=self._frame_seconds
            )
        )
        stream = EngineStream(self, state, on_update, on_error)
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._streams[stream] = None
        return stream

    def _update_stream(self, stream: EngineStream, change: Callable[[StreamState], None]) -> None:
        with self._cond:
            if stream._closed:
                raise RuntimeError("the STT engine stream is closed")
            change(stream._state)
            if stream._state.ready():
                self._cond.notify()

    def _close_stream(self, stream: EngineStream) -> None:
        with self._cond:
            stream._closed = True
            self._streams.pop(stream, None)

    def _closed_error(self) -> EngineClosedError:
        return EngineClosedError(f"STT engine {self._model_name!r} is closed")

    def warmup(self) -> None:
        """Run one inference and one streamed segment (blocking), so that lazy initialisation does not hit
        the first real request."""
        start = time.perf_counter()
        speech = synthetic_audio.speech_like(1.0, sample_rate=self._sample_rate)
        self.submit(speech).result()
        done: concurrent.futures.Future[StreamUpdate] = concurrent.futures.Future()
        stream = self.open_stream(lambda u: done.set_result(u) if u.final else None, done.set_exception)
        stream.push(speech)
        stream.flush()
        done.result()
        stream.close()
        logger.info(
            "STT engine %r warm on %s in %.2fs%s",
            self._model_name,
            self._device,
            time.perf_counter() - start,
            f", {torch.cuda.max_memory_allocated(self._device) / 2**30:.2f} GiB GPU memory"
            if self._device.type == "cuda"
            else "",
        )

    def close(self) -> None:
        """Stop the scheduler after its current batch; pending requests and open streams fail with
        EngineClosedError."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join()
        _forget(self)

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or bool(self._requests) or self._any_ready())
                    if self._closed:
                        break
                    n = min(len(self._requests), self._max_batch_size)
                    requests = [self._requests.popleft() for _ in range(n)]
                self._process([r for r in requests if r.future.set_running_or_notify_cancel()])
                self._stream_step()
        self._model = None
        with self._cond:
            requests, streams = list(self._requests), list(self._streams)
            self._requests.clear()
            self._streams.clear()
            for stream in streams:
                stream._closed = True
        for r in requests:
            if r.future.set_running_or_notify_cancel():
                r.future.set_exception(self._closed_error())
        for stream in streams:
            _deliver(stream._on_error, self._closed_error())

    # -- streaming ------------------------------------------------------------------------------------------

    def _any_ready(self) -> bool:
        return any(s._state.ready() for s in self._streams)

    def _ready(self) -> list[EngineStream]:
        return [s for s in self._streams if s._state.ready()]

    def _stream_step(self) -> None:
        """One batched step over the ready streams (none ready: nothing to do)."""
        with self._cond:
            ready = self._ready()
            if not ready:
                return
            if len(ready) < self._max_batch_size and not any(s._state.flushing for s in ready):
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
            # finals first (a user is waiting), then the least recently served
            ready.sort(key=lambda s: (not s._state.flushing, s._state.served))
            batch = ready[: self._max_batch_size]
            self._rounds += 1
            planned: list[tuple[EngineStream, Any]] = []
            empty_finals: list[EngineStream] = []
            for stream in batch:
                stream._state.served = self._rounds
                step = stream._state.plan()
                if step is None:
                    empty_finals.append(stream)
                else:
                    planned.append((stream, step))
        self._commit([(s, None) for s in empty_finals])
        if planned:
            start = time.perf_counter()
            outputs = self._run_isolated(planned)
            elapsed = time.perf_counter() - start
            with self._cond:
                self._steps += 1
                self._compute_seconds += elapsed
                self._batch_sizes.append(len(planned))
                self._step_seconds.append(elapsed)
            self._commit([(s, out) for s, out in outputs if out is not None])

    def _run_isolated(
        self, planned: list[tuple[EngineStream, Any]]
    ) -> list[tuple[EngineStream, StepOutput | None]]:
        """Run a step; if it fails, run its streams one by one so that only the failing ones fail."""
        try:
            return list(zip([s for s, _ in planned], self._run_step([i for _, i in planned]), strict=True))
        except Exception as e:  # noqa: BLE001 - the scheduler must outlive any stream
            if len(planned) > 1:
                return [result for one in planned for result in self._run_isolated([one])]
            stream = planned[0][0]
            logger.exception("STT streaming step failed", extra={"model": self._model_name})
            with self._cond:
                known = stream in self._streams
                self._close_stream(stream)
            if known:
                _deliver(stream._on_error, e)
            return [(stream, None)]

    def _commit(self, results: list[tuple[EngineStream, StepOutput | None]]) -> None:
        model = self._model
        assert model is not None
        deliveries: list[tuple[EngineStream, StreamUpdate]] = []
        with self._cond:
            for stream, out in results:
                if stream.closed:
                    continue
                update = stream._state.commit(
                    out,
                    sample_rate=self._sample_rate,
                    detokenize=model.tokenizer.ids_to_text,
                    end_tokens=self._end_tokens,
                )
                if update is not None:
                    deliveries.append((stream, update))
        for stream, update in deliveries:
            _deliver(stream._on_update, update)

    def _run_step(self, inputs: list[Any]) -> list[StepOutput]:
        """One batched step: `StepInput`s (buffered) or `CacheAwareInput`s (cache-aware)."""
        if self._chunking is not None:
            return self._cache_aware_step(inputs)
        return self._buffered_step(inputs)

    def _buffered_step(self, inputs: list[StepInput]) -> list[StepOutput]:
        """Encode every stream's window in one batch, then decode each one's chunk frames in one batched
        label-looping call that carries each stream's decoder state."""
        model = self._model
        assert model is not None
        audio, lengths = self._pad([i.audio for i in inputs])
        with self._autocast():
            encoded, encoded_len = model(input_signal=audio, input_signal_length=lengths)
            encoded = encoded.transpose(1, 2)  # [B, T, D]
            frames = encoded_len.tolist()
            counts = [
                (i.chunk_frames if i.chunk_frames is not None else n - i.skip_frames)
                for i, n in zip(inputs, frames, strict=True)
            ]
            chunks = [
                encoded[b, i.skip_frames : i.skip_frames + n]
                for b, (i, n) in enumerate(zip(inputs, counts, strict=True))
            ]
            return self._decode(chunks, [i.decoder_state for i in inputs], frames)

    def _cache_aware_step(self, inputs: list[CacheAwareInput]) -> list[StepOutput]:
        """Mel features of each stream's new frames, one encoder call per kind of chunk (a segment's first,
        without feature cache, or a later one) over the streams' batched caches, then one batched decoder
        call for all."""
        model = self._model
        chunking = self._chunking
        assert model is not None and chunking is not None
        encoder = model.encoder
        audio, lengths = self._pad([i.audio for i in inputs])
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        caches: list[Any] = [None] * len(inputs)
        with self._autocast():
            features, _ = model.preprocessor(input_signal=audio, length=lengths)
            groups: dict[bool, list[int]] = {}
            for b, i in enumerate(inputs):
                groups.setdefault(i.first, []).append(b)
            for first, members in groups.items():
                batch = features.new_zeros(
                    len(members), features.shape[1], max(inputs[b].frames for b in members)
                )
                for j, b in enumerate(members):
                    i = inputs[b]
                    batch[j, :, : i.frames] = features[b, :, i.take_from : i.take_from + i.frames]
                initial = [
                    inputs[b].encoder_cache or encoder.get_initial_cache_state(batch_size=1) for b in members
                ]
                encoded, encoded_len, channel, time_, channel_len = encoder.cache_aware_stream_step(
                    processed_signal=batch,
                    processed_signal_length=torch.tensor(
                        [inputs[b].frames for b in members], device=self._device
                    ),
                    cache_last_channel=torch.cat([c[0] for c in initial], dim=1),
                    cache_last_time=torch.cat([c[1] for c in initial], dim=1),
                    cache_last_channel_len=torch.cat([c[2] for c in initial], dim=0),
                    # chunked attention has no look-ahead past a chunk: every output frame is final
                    keep_all_outputs=True,
                    drop_extra_pre_encoded=0 if first else chunking.drop,
                )
                for j, b in enumerate(members):
                    outputs[b] = encoded[j, :, : int(encoded_len[j])].T
                    caches[b] = (
                        channel[:, j : j + 1].clone(),
                        time_[:, j : j + 1].clone(),
                        channel_len[j : j + 1].clone(),
                    )
            chunks = [o for o in outputs if o is not None]
            results = self._decode(chunks, [i.decoder_state for i in inputs], [len(c) for c in chunks])
        return [dataclasses.replace(r, encoder_cache=c) for r, c in zip(results, caches, strict=True)]

    def _decode(self, chunks: list[torch.Tensor], states: list[Any], frames: list[int]) -> list[StepOutput]:
        """Greedy label-looping decoding of each stream's new encoder frames ([T, D] each), in one batch,
        carrying each stream's decoder state."""
        from nemo.collections.asr.parts.utils.rnnt_utils import batched_hyps_to_hypotheses

        model = self._model
        assert model is not None
        computer = model.decoding.decoding.decoding_computer
        counts = [len(c) for c in chunks]
        x = chunks[0].new_zeros(len(chunks), max(counts), chunks[0].shape[1])
        for b, chunk in enumerate(chunks):
            x[b, : len(chunk)] = chunk
        prev = None if all(s is None for s in states) else computer.merge_to_batched_state(list(states))
        hyps, state = computer(
            x=x, out_len=torch.tensor(counts, device=self._device), prev_batched_state=prev
        )
        hypotheses = batched_hyps_to_hypotheses(hyps, batch_size=len(chunks))
        return [
            StepOutput(
                tokens=h.y_sequence.tolist(),
                confidences=list(h.non_blank_step_confidence_precomputed or []),
                decoder_state=_clone(item),
                frames_encoded=n,
            )
            for h, item, n in zip(hypotheses, computer.split_batched_state(state), frames, strict=True)
        ]

    # -- whole utterances -----------------------------------------------------------------------------------

    def _process(self, batch: list[_Request]) -> None:
        if not batch:
            return
        start = time.perf_counter()
        try:
            results = self._infer([r.audio for r in batch])
        except Exception as e:  # noqa: BLE001 - the worker must outlive any request
            if len(batch) > 1:  # isolate the failing request (or the batch was too large for the device)
                for r in batch:
                    self._process([r])
                return
            logger.exception("STT inference failed", extra={"model": self._model_name})
            batch[0].future.set_exception(e)
            return
        elapsed = time.perf_counter() - start
        for r, (text, confidence) in zip(batch, results, strict=True):
            duration = len(r.audio) / self._sample_rate
            r.future.set_result(Transcript(text, confidence, duration, elapsed, len(batch)))

    def _infer(self, clips: list[np.ndarray]) -> list[tuple[str, float]]:
        model = self._model
        assert model is not None
        audio, lengths = self._pad(clips)
        with self._autocast():
            encoded, encoded_len = model(input_signal=audio, input_signal_length=lengths)
            hyps = model.decoding.rnnt_decoder_predictions_tensor(
                encoder_output=encoded, encoded_lengths=encoded_len, return_hypotheses=True
            )
        if self._end_tokens:
            for h in hyps:
                h.text = model.tokenizer.ids_to_text(
                    [t for t in h.y_sequence.tolist() if t not in self._end_tokens]
                )
        return [(h.text, float(np.mean(h.word_confidence)) if h.word_confidence else 0.0) for h in hyps]

    def _pad(self, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """A zero-padded batch on the device, and the lengths (each at least _MIN_SECONDS)."""
        min_samples = int(_MIN_SECONDS * self._sample_rate)
        lengths = torch.tensor([max(len(c), min_samples) for c in clips])
        audio = torch.zeros(len(clips), int(lengths.max()))
        for i, clip in enumerate(clips):
            audio[i, : len(clip)] = torch.from_numpy(clip)
        return audio.to(self._device), lengths.to(self._device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self._dtype)


def _deliver(callback: Callable[[Any], None], value: Any) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - a consumer bug (or a closed loop) must not stop the scheduler
        logger.exception("STT stream callback failed")


def _clone(value: Any) -> Any:
    """A deep copy of a decoder state item's tensors: the CUDA-graph decoder reuses its state buffers."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _clone(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value


_engines: dict[tuple[Any, ...], ParakeetEngine] = {}
_engines_lock = threading.RLock()


def load_engine(
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str = "float32",
    *,
    streaming: StreamingConfig | None = None,
    att_context_size: tuple[int, int] | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_wait: float = DEFAULT_MAX_WAIT,
    cuda_graphs: bool = True,
) -> ParakeetEngine:
    """The process-wide engine for `model` with these options (see `ParakeetEngine`; `cuda_graphs`: NeMo's
    CUDA-graph decoder, off on CPU), loaded and warmed up on first use; other options give another engine.
    Blocking: call it from a thread. Raises ModelLoadError with a one-line explanation when the model
    cannot be loaded or the options do not fit it."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    compute_dtype = resolve_dtype(dtype, dev)
    streaming = streaming or StreamingConfig()
    cuda_graphs = cuda_graphs and dev.type == "cuda"
    key = (
        model,
        str(dev),
        str(compute_dtype),
        streaming,
        att_context_size,
        max_batch_size,
        max_wait,
        cuda_graphs,
    )
    with _engines_lock:  # also serialises loading, so concurrent callers never load the same model twice
        engine = _engines.get(key)
        if engine is None or engine.closed:
            asr = load_asr_model(model, dev, cuda_graphs=cuda_graphs)
            try:
                engine = ParakeetEngine(
                    asr,
                    model_name=model,
                    device=dev,
                    dtype=compute_dtype,
                    max_batch_size=max_batch_size,
                    max_wait=max_wait,
                    streaming=streaming,
                    att_context_size=att_context_size,
                )
            except ValueError as e:
                raise ModelLoadError(f"STT model {model!r}: {e}") from e
            logger.info("STT engine %r: %s", model, engine.describe())
            try:
                engine.warmup()
            except Exception as e:
                engine.close()
                raise ModelLoadError(f"STT model {model!r} loaded but a test inference failed: {e}") from e
            _engines[key] = engine
        return engine


def _forget(engine: ParakeetEngine) -> None:
    with _engines_lock:
        for key in [k for k, v in _engines.items() if v is engine]:
            del _engines[key]
