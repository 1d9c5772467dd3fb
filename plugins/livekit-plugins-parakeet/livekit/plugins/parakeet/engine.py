"""The inference engine: one model on one device, served by one worker thread to any number of sessions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import synthetic_audio
from .log import logger
from .models import DEFAULT_MODEL, ModelLoadError, load_asr_model, resolve_device, resolve_dtype

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTModel

_MIN_SECONDS = 0.1  # shorter input is zero-padded: the mel front end needs a few STFT windows


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
class _Request:
    audio: np.ndarray
    future: concurrent.futures.Future[Transcript]


class ParakeetEngine:
    """Owns one NeMo transducer model on one device. All torch work runs on a dedicated worker thread, which
    batches whatever requests are pending into a single forward pass; callers only enqueue and await."""

    def __init__(
        self,
        model: EncDecRNNTModel,
        *,
        model_name: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        max_batch_size: int = 16,
    ) -> None:
        self._model: EncDecRNNTModel | None = model
        self._sample_rate = int(model.cfg.sample_rate)
        self._model_name = model_name
        self._device = device
        self._dtype = dtype
        self._max_batch_size = max_batch_size
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
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
        with self._lock:
            if self._closed:
                future.set_exception(EngineClosedError(f"STT engine {self._model_name!r} is closed"))
            else:
                self._queue.put(_Request(audio, future))
        return future

    def warmup(self) -> None:
        """Run one inference (blocking) so that lazy initialisation does not hit the first real request."""
        start = time.perf_counter()
        self.submit(synthetic_audio.speech_like(1.0, sample_rate=self._sample_rate)).result()
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
        """Stop the worker after its current batch; pending requests fail with EngineClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        _forget(self)

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                request = self._queue.get()
                if request is None:
                    break
                batch = [request]
                while len(batch) < self._max_batch_size:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)  # seen again by the outer get, after this batch
                        break
                    batch.append(nxt)
                self._process([r for r in batch if r.future.set_running_or_notify_cancel()])
        self._model = None
        while True:  # anything that slipped in between close() and the sentinel
            try:
                leftover = self._queue.get_nowait()
            except queue.Empty:
                break
            if leftover is not None and leftover.future.set_running_or_notify_cancel():
                leftover.future.set_exception(EngineClosedError(f"STT engine {self._model_name!r} is closed"))

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
        min_samples = int(_MIN_SECONDS * self._sample_rate)
        lengths = torch.tensor([max(len(c), min_samples) for c in clips])
        audio = torch.zeros(len(clips), int(lengths.max()))
        for i, clip in enumerate(clips):
            audio[i, : len(clip)] = torch.from_numpy(clip)
        audio, lengths = audio.to(self._device), lengths.to(self._device)
        autocast = (
            torch.autocast(device_type="cuda", dtype=self._dtype)
            if self._dtype != torch.float32
            else contextlib.nullcontext()
        )
        with autocast:
            encoded, encoded_len = model(input_signal=audio, input_signal_length=lengths)
            hyps = model.decoding.rnnt_decoder_predictions_tensor(
                encoder_output=encoded, encoded_lengths=encoded_len, return_hypotheses=True
            )
        return [(h.text, float(np.mean(h.word_confidence)) if h.word_confidence else 0.0) for h in hyps]


_engines: dict[tuple[str, str, str], ParakeetEngine] = {}
_engines_lock = threading.RLock()


def load_engine(model: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "float32") -> ParakeetEngine:
    """The process-wide engine for (model, device, dtype), loaded and warmed up on first use. Blocking: call
    it from a thread. Raises ModelLoadError with a one-line explanation when the model cannot be loaded."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    compute_dtype = resolve_dtype(dtype, dev)
    key = (model, str(dev), str(compute_dtype))
    with _engines_lock:  # also serialises loading, so concurrent callers never load the same model twice
        engine = _engines.get(key)
        if engine is None or engine.closed:
            engine = ParakeetEngine(
                load_asr_model(model, dev), model_name=model, device=dev, dtype=compute_dtype
            )
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
