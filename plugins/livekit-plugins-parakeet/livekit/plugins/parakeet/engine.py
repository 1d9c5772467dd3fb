"""The inference engine: one model on one device, served by one scheduler thread to any number of sessions.

This module is the public API (`open_stream`, `transcribe`/`submit`, `stats`, `health`, `warmup`, `close`) and
the process-wide engine cache (`load_engine`). The batching policy and supervision are in scheduler.py, the
model math in steps/.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .loading import ModelLoadError, load_asr_model, resolve_device, resolve_dtype
from .log import logger
from .models import DEFAULT_DEVICE, DEFAULT_DTYPE, DEFAULT_MODEL
from .results import EngineHealth, EngineStats, Transcript
from .scheduler import Scheduler
from .steps import CacheAwareState, ModelContext, Steps, StreamState, chunking_of, is_cache_aware
from .stream import EngineStream
from .streaming import StreamingConfig, StreamUpdate

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTModel

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_MAX_WAIT = 0.02
DEFAULT_WATCHDOG_TIMEOUT = 30.0
DEFAULT_WARMUP_TIMEOUT = 300.0


class ParakeetEngine:
    """Owns one NeMo transducer model on one device. All torch work runs on a dedicated scheduler thread,
    which batches pending requests and ready streams; callers only enqueue and await.

    `max_batch_size` bounds the utterances or streams in one forward pass; `max_wait` is how long a step
    waits for more streams to have a chunk ready (never when a final is due); `streaming` is the default
    window configuration of buffered streams; `att_context_size` ([left, right] encoder frames, one of the
    model's `encoder.att_context_size_all`) selects the look-ahead of a cache-aware model. A model whose
    vocabulary has end-of-utterance tokens (`models.END_OF_UTTERANCE_TOKENS`) ends a stream's utterance
    where it emits one; they never appear in text. `health()` reports a step running longer than
    `watchdog_timeout` seconds; `warmup()` fails after `warmup_timeout` seconds."""

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
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    ) -> None:
        if max_batch_size < 1 or max_wait < 0:
            raise ValueError(
                f"max_batch_size must be >= 1 and max_wait >= 0 (got {max_batch_size}, {max_wait})"
            )
        if watchdog_timeout <= 0 or warmup_timeout <= 0:
            raise ValueError(
                f"watchdog_timeout and warmup_timeout must be > 0 (got {watchdog_timeout}, {warmup_timeout})"
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
        context = ModelContext(model, device, dtype)
        self._model_name = model_name
        self._device = device
        self._dtype = dtype
        self._sample_rate = context.sample_rate
        self._frame_seconds = context.frame_seconds
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._streaming = streaming or StreamingConfig()
        self._warmup_timeout = warmup_timeout
        # cache-aware models stream natively (their chunking comes from the encoder); others are buffered
        self._chunking = chunking_of(model) if is_cache_aware(model) else None
        self._description = self._describe(model)
        self._scheduler = Scheduler(
            Steps.for_model(context, self._chunking),
            context,
            name=model_name,
            max_batch_size=max_batch_size,
            max_wait=max_wait,
            watchdog_timeout=watchdog_timeout,
        )

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
        """closed, or stopped because its scheduler thread died"""
        return self._scheduler.stopped

    @property
    def frame_seconds(self) -> float:
        """duration of one encoder frame (80 ms for Parakeet)"""
        return self._frame_seconds

    @property
    def tokenizer(self) -> Any:
        """The model's NeMo tokenizer: its `ids_to_text` makes the text of every transcript, streamed or not."""
        return self._scheduler.context.model.tokenizer

    @property
    def steps(self) -> Steps:
        """The model math the scheduler calls (see `Steps`)."""
        return self._scheduler.steps

    @property
    def active_streams(self) -> int:
        return self._scheduler.active_streams

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

    def describe(self) -> str:
        """Model family, rates and chunking, for logs."""
        return self._description

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    def health(self) -> EngineHealth:
        """Whether the engine serves: its thread alive, no step stuck past the watchdog, no failures in a row."""
        return self._scheduler.health()

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
        if audio.size == 0:
            future: concurrent.futures.Future[Transcript] = concurrent.futures.Future()
            future.set_result(Transcript("", 0.0, 0.0, 0.0, 0))
            return future
        return self._scheduler.submit(audio)

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
        stream = EngineStream(self._scheduler, state, on_update, on_error)
        self._scheduler.add_stream(stream)
        return stream

    def warmup(self) -> None:
        """Run one inference and one streamed segment (blocking), so that lazy initialisation does not hit
        the first real request. Raises ModelLoadError when they take longer than `warmup_timeout`."""
        start = time.perf_counter()
        signal = _warmup_signal(self._sample_rate)
        final: concurrent.futures.Future[StreamUpdate] = concurrent.futures.Future()

        def on_update(update: StreamUpdate) -> None:
            if update.final and not final.done():
                final.set_result(update)

        stream = self.open_stream(on_update, final.set_exception)
        try:
            self.submit(signal).result(timeout=self._warmup_timeout)
            stream.push(signal)
            stream.flush()
            final.result(timeout=max(0.0, self._warmup_timeout - (time.perf_counter() - start)))
        except TimeoutError as e:
            raise ModelLoadError(
                f"STT model {self._model_name!r}: warm-up on {self._device} did not finish within "
                f"{self._warmup_timeout:g} s (a busy or too slow device? raise warmup_timeout)"
            ) from e
        finally:
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

    def close(self, timeout: float | None = None) -> None:
        """Stop the scheduler: pending requests and open streams fail with EngineClosedError at once; waits
        up to `timeout` seconds (default: the watchdog timeout) for a step in progress to end."""
        self._scheduler.close(timeout)
        _forget(self)

    def _describe(self, model: EncDecRNNTModel) -> str:
        head = f"{type(model).__name__}, {self._sample_rate} Hz, {self._frame_seconds * 1000:.0f} ms frames"
        if self._chunking is not None:
            c = self._chunking
            return (
                f"{head}, cache-aware streaming: att_context_size {model.encoder.att_context_size}, "
                f"chunks of {c.shift * c.hop / self._sample_rate:.2f} s"
            )
        w = self._streaming
        return f"{head}, buffered streaming: left/chunk/right {w.left:.2f}/{w.chunk:.2f}/{w.right:.2f} s"


def _warmup_signal(sample_rate: int, seconds: float = 1.0) -> np.ndarray:
    """Sound with speech's pitch and rhythm: a 120 Hz harmonic series in four syllable-like bursts."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    voice = sum(np.sin(2 * np.pi * 120.0 * h * t) / h for h in range(1, 30))
    bursts = np.sin(np.pi * 4.0 * t) ** 2
    signal = voice * bursts
    return (0.3 * signal / np.max(np.abs(signal))).astype(np.float32)


_engines: dict[tuple[Any, ...], ParakeetEngine] = {}
_engines_lock = threading.RLock()


def load_engine(
    model: str = DEFAULT_MODEL,
    device: str = DEFAULT_DEVICE,
    dtype: str = DEFAULT_DTYPE,
    *,
    name: str | None = None,
    streaming: StreamingConfig | None = None,
    att_context_size: tuple[int, int] | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_wait: float = DEFAULT_MAX_WAIT,
    cuda_graphs: bool = True,
    watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
) -> ParakeetEngine:
    """The process-wide engine for `model` (a Hugging Face name or a local ``.nemo`` path) with these options
    (see `ParakeetEngine`; `name`: its `model_name`, default `model`; `cuda_graphs`: NeMo's CUDA-graph
    decoder, off on CPU), loaded and warmed up on first use; other options give another engine
    (`warmup_timeout` aside). Blocking: call it from a thread. Raises ModelLoadError with a one-line
    explanation when the model cannot be loaded or the options do not fit it."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    compute_dtype = resolve_dtype(dtype, dev)
    streaming = streaming or StreamingConfig()
    cuda_graphs = cuda_graphs and dev.type == "cuda"
    name = name or model
    key = (
        model,
        name,
        str(dev),
        str(compute_dtype),
        streaming,
        att_context_size,
        max_batch_size,
        max_wait,
        cuda_graphs,
        watchdog_timeout,
    )
    with _engines_lock:  # also serialises loading, so concurrent callers never load the same model twice
        engine = _engines.get(key)
        if engine is None or engine.closed:
            asr = load_asr_model(model, dev, cuda_graphs=cuda_graphs)
            try:
                engine = ParakeetEngine(
                    asr,
                    model_name=name,
                    device=dev,
                    dtype=compute_dtype,
                    max_batch_size=max_batch_size,
                    max_wait=max_wait,
                    streaming=streaming,
                    att_context_size=att_context_size,
                    watchdog_timeout=watchdog_timeout,
                    warmup_timeout=warmup_timeout,
                )
            except ValueError as e:
                raise ModelLoadError(f"STT model {name!r}: {e}") from e
            logger.info("STT engine %r: %s", name, engine.describe())
            try:
                engine.warmup()
            except ModelLoadError:
                engine.close(timeout=0)
                raise
            except Exception as e:
                engine.close(timeout=0)
                raise ModelLoadError(f"STT model {name!r} loaded but a test inference failed: {e}") from e
            _engines[key] = engine
        return engine


def _forget(engine: ParakeetEngine) -> None:
    with _engines_lock:
        for key in [k for k, v in _engines.items() if v is engine]:
            del _engines[key]
