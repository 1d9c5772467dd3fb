"""ChatterboxEngine: one model on one device, served by one worker thread to any number of streams.

Requests are queued and run in order on the worker thread (all torch work happens there, in inference mode);
their audio comes back to the requesting event loop through a SynthesisHandle. A request is one text,
synthesized whole (T3 tokens, then S3Gen + HiFT). The per-request generator (`_generate`) is the unit a later
scheduler can step chunk by chunk and interleave or batch across streams; cancellation is checked between T3
tokens.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from . import decoding
from .log import logger
from .models import DEFAULT_MODEL, LoadedModel, ModelLoadError, load_model, resolve_device
from .voices import VoiceCache

SAMPLE_RATE = 24000  # S3Gen output rate
_SPEECH_CODES = 6561  # S3 tokenizer codebook; larger ids are T3 control tokens
_TURBO_TAIL_SILENCE = 3  # Turbo's generate() ends every utterance on 3 silence tokens
_WARMUP_TEXT = "Hello, this is a warm-up."


class SynthesisError(RuntimeError):
    """A synthesis request failed. The engine keeps serving other requests."""


@dataclass
class EngineStats:
    submitted: int = 0
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    """stopped part-way by cancel()"""
    dropped: int = 0
    """cancelled while still queued: never started"""
    failed: int = 0
    voices_prepared: int = 0
    audio_seconds: float = 0.0


class _End:
    pass


_Item = bytes | _End | SynthesisError


class _Sink(Protocol):
    @property
    def cancelled(self) -> bool: ...

    def _deliver(self, item: _Item) -> None: ...


class SynthesisHandle:
    """One request's audio: int16 mono PCM chunks at 24 kHz, read with `async for` on the loop that made it.

    Iteration ends when the audio is complete or the handle is cancelled; it raises SynthesisError on failure.
    """

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.request_id = request_id
        self._loop = loop
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._finished = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the work (between tokens), or drop it if still queued, and end iteration. Any thread."""
        if not self._cancelled.is_set():
            self._cancelled.set()
            self._post(_End())

    def _deliver(self, item: _Item) -> None:
        if not self._cancelled.is_set():
            self._post(item)

    def _post(self, item: _Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody will read this audio
            self._cancelled.set()

    def __aiter__(self) -> SynthesisHandle:
        return self

    async def __anext__(self) -> bytes:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, bytes):
            return item
        self._finished = True
        if isinstance(item, SynthesisError):
            raise item
        raise StopAsyncIteration


class _WarmupSink:
    cancelled = False

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: SynthesisError | None = None

    def _deliver(self, item: _Item) -> None:
        if isinstance(item, SynthesisError):
            self.error = item
        if not isinstance(item, bytes):
            self.done.set()


@dataclass
class _Request:
    text: str
    voice: str | None
    exaggeration: float
    params: decoding.SamplingParams
    watermark: bool
    sink: _Sink


class ChatterboxEngine:
    """Owns one loaded Chatterbox model and the one thread that runs it. Share it between sessions."""

    def __init__(self, model: LoadedModel) -> None:
        if model.variant == "turbo":
            from chatterbox.tts_turbo import punc_norm
        else:
            from chatterbox.tts import punc_norm
        self._punc_norm: Callable[[str], str] = punc_norm
        self._model = model
        self._voices = VoiceCache(model)
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._stats = EngineStats()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="chatterbox-engine", daemon=True)
        self._thread.start()

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def device(self) -> str:
        return str(self._model.device)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            return replace(self._stats, voices_prepared=self._voices.prepared)

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
        temperature: float = 0.8,
        watermark: bool = True,
    ) -> SynthesisHandle:
        """Queue `text`; read the audio from the returned handle. Call from a running event loop.

        voice: None for the model's built-in voice, or a reference audio file (prepared once, then cached).
        Turbo ignores exaggeration and cfg_weight. watermark: apply the Perth watermark to this audio.
        """
        handle = SynthesisHandle(uuid.uuid4().hex[:12], asyncio.get_running_loop())
        params = decoding.SamplingParams.for_variant(
            self._model.variant, temperature=temperature, cfg_weight=cfg_weight
        )
        self._submit(_Request(text, voice, exaggeration, params, watermark, handle))
        return handle

    def warmup(self) -> None:
        """Blocking: synthesize a short text in the built-in voice (if any) on the worker thread."""
        if self._model.tts.conds is None:
            logger.info("model %r has no built-in voice: skipping warm-up", self.model_name)
            return
        sink = _WarmupSink()
        params = decoding.SamplingParams.for_variant(self._model.variant, temperature=0.8, cfg_weight=0.5)
        self._submit(_Request(_WARMUP_TEXT, None, 0.5, params, True, sink))
        sink.done.wait()
        if sink.error is not None:
            raise sink.error

    def close(self) -> None:
        """Stop the worker: the current request stops at its next check, queued ones fail. Blocking."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._requests.put(None)
        self._thread.join()

    def _submit(self, request: _Request) -> None:
        with self._lock:
            if self._closed:
                raise SynthesisError(f"Chatterbox engine for {self.model_name!r} is closed")
            self._stats.submitted += 1
            self._requests.put(request)

    def _count(self, field: str, amount: float = 1) -> None:
        with self._lock:
            setattr(self._stats, field, getattr(self._stats, field) + amount)

    def _serve(self) -> None:
        with torch.inference_mode():
            while (request := self._requests.get()) is not None:
                self._process(request)

    def _process(self, request: _Request) -> None:
        sink = request.sink
        if sink.cancelled:
            self._count("dropped")
            return
        if self._closed:
            sink._deliver(SynthesisError(f"Chatterbox engine for {self.model_name!r} was closed"))
            return

        self._count("started")

        def stopped() -> bool:
            return sink.cancelled or self._closed

        try:
            for pcm in self._generate(request, stopped):
                sink._deliver(pcm)
        except Exception as e:  # noqa: BLE001 - one failed request must not stop the engine
            self._count("failed")
            logger.exception("Chatterbox synthesis failed", extra={"text": request.text})
            error = SynthesisError(f"Chatterbox synthesis failed: {type(e).__name__}: {e}")
            error.__cause__ = e
            sink._deliver(error)
            return

        if stopped():
            self._count("cancelled")
            sink._deliver(SynthesisError("Chatterbox engine was closed") if self._closed else _End())
        else:
            self._count("completed")
            sink._deliver(_End())

    def _generate(self, request: _Request, stopped: Callable[[], bool]) -> Iterator[bytes]:
        if not request.text.strip():
            return  # punc_norm would make Chatterbox say "You need to add some text for me to talk."
        model = self._model
        conds = self._voices.get(request.voice, request.exaggeration)
        text = self._punc_norm(request.text)
        rule = model.length_rule.for_text(text) if model.length_rule is not None else None

        codes: list[int] = []
        for token in decoding.speech_tokens(
            model.tts.t3, conds.t3, self._text_tokens(text), model.variant, request.params, logits_rule=rule
        ):
            if stopped():
                return
            if token < _SPEECH_CODES:
                codes.append(token)
        if stopped() or not codes:
            return
        yield self._vocode(codes, conds.gen, watermark=request.watermark)

    def _text_tokens(self, text: str) -> torch.Tensor:
        tokenizer = self._model.tts.tokenizer
        if self._model.variant == "turbo":
            ids = tokenizer(text, return_tensors="pt").input_ids
        else:
            ids = tokenizer.text_to_tokens(text)
        return decoding.text_tokens(self._model.tts.t3, ids, self._model.variant)

    def _vocode(self, codes: list[int], ref: dict[str, Any], *, watermark: bool) -> bytes:
        model = self._model
        tokens = torch.tensor(codes, dtype=torch.long, device=model.device)
        if model.variant == "turbo":
            from chatterbox.models.s3gen.const import S3GEN_SIL

            tokens = torch.cat([tokens, tokens.new_full((_TURBO_TAIL_SILENCE,), S3GEN_SIL)])
        wav, _ = model.tts.s3gen.inference(
            speech_tokens=tokens, ref_dict=ref, n_cfm_timesteps=model.n_cfm_timesteps
        )
        audio = wav.squeeze(0).float().cpu().numpy()
        if watermark:
            audio = model.tts.watermarker.apply_watermark(audio, sample_rate=SAMPLE_RATE)
        self._count("audio_seconds", len(audio) / SAMPLE_RATE)
        return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()


_engines: dict[tuple[str, str, str], ChatterboxEngine] = {}
_engines_lock = threading.Lock()


def load_engine(model: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "float32") -> ChatterboxEngine:
    """Blocking (run it in a thread): the process-wide engine for these settings, loaded and warmed up once.

    Raises ModelLoadError.
    """
    key = (model, str(resolve_device(device)), dtype)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None or engine.closed:
            engine = ChatterboxEngine(load_model(model, device, dtype))
            try:
                engine.warmup()
            except SynthesisError as e:
                engine.close()
                raise ModelLoadError(
                    f"Chatterbox model {model!r} loaded but its warm-up synthesis failed: {e}"
                ) from e
            _engines[key] = engine
        return engine
