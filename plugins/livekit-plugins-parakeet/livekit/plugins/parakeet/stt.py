from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import torch
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APITimeoutError,
    LanguageCode,
    NotGivenOr,
    stt,
)
from livekit.agents.utils import AudioBuffer, is_given, shortuuid

from .engine import EngineClosedError, ParakeetEngine, load_engine
from .log import logger
from .models import DEFAULT_MODEL, ModelLoadError


@dataclass
class _STTOptions:
    model: str
    device: str
    dtype: str
    language: str


class STT(stt.STT):
    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "float32",
        language: str = "en",
        engine: ParakeetEngine | None = None,
    ) -> None:
        """Local NVIDIA Parakeet (NeMo) speech-to-text on VAD-segmented utterances.

        Cheap to create (one per session): the model lives in a `ParakeetEngine` shared by every STT with the
        same (model, device, dtype), loaded on `prewarm()` or on the first recognition.

        Args:
            model: a Hugging Face name, a path to a ``.nemo`` file, or ``synthetic-tiny`` / ``synthetic-full``
                (random weights, for tests and benchmarks).
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
            dtype: ``float32``, ``bfloat16`` or ``float16`` (reduced precision applies on CUDA only).
            language: language reported on transcripts (Parakeet v2 is English-only; v3 detects the language).
            engine: an already loaded engine; `model`, `device` and `dtype` are then ignored.
        """
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._opts = _STTOptions(model=model, device=device, dtype=dtype, language=language)
        self._engine = engine
        self._shared_engine: ParakeetEngine | None = None

    @property
    def model(self) -> str:
        return self._engine.model_name if self._engine else self._opts.model

    @property
    def provider(self) -> str:
        return "nvidia-nemo-local"

    def prewarm(self) -> None:
        """Start loading the shared engine in the background (returns at once)."""
        if self._engine is None:
            threading.Thread(target=self._prewarm, name="parakeet-prewarm", daemon=True).start()

    def _prewarm(self) -> None:
        try:
            self._load()
        except ModelLoadError as e:
            logger.error("STT prewarm failed: %s", e)

    def _load(self) -> ParakeetEngine:
        return load_engine(self._opts.model, device=self._opts.device, dtype=self._opts.dtype)

    async def _engine_ready(self) -> ParakeetEngine:
        if self._engine is not None:
            return self._engine
        if self._shared_engine is None or self._shared_engine.closed:
            try:
                self._shared_engine = await asyncio.to_thread(self._load)
            except ModelLoadError as e:
                raise APIConnectionError(str(e), retryable=False) from e
        return self._shared_engine

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frame = _combine(buffer)
        text, confidence, duration = "", 0.0, 0.0
        if frame is not None:
            engine = await self._engine_ready()
            pcm = _to_mono(frame, engine.sample_rate)
            duration = len(pcm) / engine.sample_rate
            try:
                result = await asyncio.wait_for(engine.transcribe(pcm), conn_options.timeout)
            except TimeoutError as e:
                raise APITimeoutError(f"local STT took longer than {conn_options.timeout}s") from e
            except EngineClosedError as e:
                raise APIConnectionError(str(e), retryable=False) from e
            except Exception as e:
                # out-of-memory can pass once other sessions finish; anything else would fail again
                retryable = isinstance(e, torch.cuda.OutOfMemoryError)
                raise APIError(f"local STT inference failed: {e}", retryable=retryable) from e
            text, confidence = result.text, result.confidence

        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=shortuuid(),
            alternatives=[
                stt.SpeechData(
                    language=LanguageCode(language if is_given(language) else self._opts.language),
                    text=text,
                    confidence=confidence,
                    end_time=duration,
                )
            ],
        )


def _combine(buffer: AudioBuffer) -> rtc.AudioFrame | None:
    """One frame holding the whole buffer, or None when there is no audio."""
    frames = [f for f in (buffer if isinstance(buffer, list) else [buffer]) if f.samples_per_channel > 0]
    return rtc.combine_audio_frames(frames) if frames else None


def _to_mono(frame: rtc.AudioFrame, sample_rate: int) -> np.ndarray:
    """Downmix and resample int16 PCM to float32 mono at `sample_rate`."""
    pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = pcm.mean(axis=1).round().astype(np.int16) if frame.num_channels > 1 else pcm[:, 0]
    if frame.sample_rate != sample_rate:
        resampler = rtc.AudioResampler(
            frame.sample_rate, sample_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
        )
        frames = resampler.push(bytearray(mono.tobytes())) + resampler.flush()
        mono = np.concatenate(
            [np.frombuffer(f.data, dtype=np.int16) for f in frames] or [np.zeros(0, np.int16)]
        )
    return mono.astype(np.float32) / 32768.0
