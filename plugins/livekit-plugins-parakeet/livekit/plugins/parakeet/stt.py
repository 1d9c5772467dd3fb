from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    utils,
)
from livekit.agents.utils import AudioBuffer, is_given, shortuuid

from .engine import ParakeetEngine, load_engine
from .errors import EngineClosedError
from .loading import ModelLoadError
from .log import logger
from .models import DEFAULT_DEVICE, DEFAULT_DTYPE, DEFAULT_MODEL, STTDtypes, STTModels
from .streaming import StreamingConfig, StreamUpdate

SAMPLE_RATE = 16000  # every Parakeet checkpoint; streams resample their input to it


@dataclass
class _STTOptions:
    model: str
    device: str
    dtype: str
    language: str
    streaming: StreamingConfig | None


class STT(stt.STT):
    def __init__(
        self,
        *,
        model: STTModels | str = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        dtype: STTDtypes = DEFAULT_DTYPE,
        language: str = "en",
        streaming: StreamingConfig | None = None,
        engine: ParakeetEngine | None = None,
    ) -> None:
        """Local NVIDIA Parakeet (NeMo) speech-to-text, streaming: interim transcripts while the user speaks,
        and a final one right after each flush (the session flushes at VAD end of speech, `manual_flush`).

        Cheap to create (one per session): the model lives in a `ParakeetEngine` shared by every STT with the
        same (model, device, dtype), loaded on `prewarm()` or on the first recognition; the engine batches
        the chunks of all live streams into shared steps. `recognize()` transcribes a whole buffer at once.

        Args:
            model: a Hugging Face name (`STTModels`) or a path to a ``.nemo`` file (for random-weight models,
                see `livekit.plugins.parakeet.testing`).
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
            dtype: ``float32``, ``bfloat16`` or ``float16`` (reduced precision applies on CUDA only).
            language: language reported on transcripts (Parakeet v2 is English-only; v3 detects the language).
            streaming: left/chunk/right windows of streams; default: the engine's (`StreamingConfig()`).
            engine: an already loaded engine; `model`, `device` and `dtype` are then ignored.
        """
        super().__init__(
            capabilities=stt.STTCapabilities(streaming=True, interim_results=True, manual_flush=True)
        )
        self._opts = _STTOptions(
            model=model, device=device, dtype=dtype, language=language, streaming=streaming
        )
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

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        return SpeechStream(
            stt=self,
            language=language if is_given(language) else self._opts.language,
            conn_options=conn_options,
        )

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
            except APIError:
                raise  # the engine's own (EngineError: retryable)
            except Exception as e:
                # the utterance itself made the model fail: it would fail again
                raise APIError(f"local STT inference failed: {e}", retryable=False) from e
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


class SpeechStream(stt.RecognizeStream):
    """One live stream on the shared engine. Events per segment (a flush ends one; so does the model's
    end-of-utterance token, for models that have one, without waiting for the flush): START_OF_SPEECH with
    the first words, INTERIM_TRANSCRIPT when a step changes the text, then FINAL_TRANSCRIPT (possibly
    empty), END_OF_SPEECH if words were heard, and RECOGNITION_USAGE with the segment's audio duration."""

    def __init__(self, *, stt: STT, language: str, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._parakeet = stt
        self._language = LanguageCode(language)
        self._speaking = False
        self._request_id = shortuuid()

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        # the base class resamples mono only: downmix first
        if frame.samples_per_channel == 0:
            return
        if frame.num_channels > 1:
            pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
            mono = pcm.mean(axis=1).round().astype(np.int16)
            frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
        super().push_frame(frame)

    async def _run(self) -> None:
        self._speaking = False  # a retry starts a new engine stream, and a new segment
        engine = await self._parakeet._engine_ready()
        if engine.sample_rate != SAMPLE_RATE:
            raise APIConnectionError(
                f"STT model {engine.model_name!r} expects {engine.sample_rate} Hz audio; streaming needs "
                f"{SAMPLE_RATE} Hz",
                retryable=False,
            )
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[StreamUpdate | BaseException | None] = asyncio.Queue()

        def put(item: StreamUpdate | BaseException) -> None:  # called from the engine thread
            loop.call_soon_threadsafe(updates.put_nowait, item)

        try:
            stream = engine.open_stream(put, put, self._parakeet._opts.streaming)
        except EngineClosedError as e:
            raise APIConnectionError(str(e), retryable=False) from e
        flushes = 0

        async def feed() -> None:
            nonlocal flushes
            try:
                async for data in self._input_ch:
                    if isinstance(data, self._FlushSentinel):
                        flushes += 1
                        stream.flush()
                    else:
                        stream.push(np.frombuffer(data.data, dtype=np.int16).astype(np.float32) / 32768.0)
            except Exception as e:  # noqa: BLE001 - e.g. the engine closed under us: reported below
                updates.put_nowait(e)
            else:
                updates.put_nowait(None)

        feeder = asyncio.create_task(feed(), name="parakeet-stt-feed")
        try:
            input_ended = False
            while not input_ended or flushes:
                item = await updates.get()
                if item is None:
                    input_ended = True
                elif isinstance(item, BaseException):
                    raise _api_error(item)
                else:
                    self._emit(item)
                    flushes -= item.final and not item.end_of_utterance
        finally:
            stream.close()
            await utils.aio.cancel_and_wait(feeder)

    def _emit(self, update: StreamUpdate) -> None:
        offset = self.start_time_offset
        data = stt.SpeechData(
            language=self._language,
            text=update.text,
            start_time=update.start_time + offset,
            end_time=update.end_time + offset,
            confidence=update.confidence,
        )
        if update.text and not self._speaking:
            self._speaking = True
            self._send(stt.SpeechEventType.START_OF_SPEECH)
        if not update.final:
            self._send(stt.SpeechEventType.INTERIM_TRANSCRIPT, alternatives=[data])
            return
        self._send(stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[data])
        if self._speaking:
            self._speaking = False
            self._send(stt.SpeechEventType.END_OF_SPEECH, speech_end_time=data.end_time)
        self._send(
            stt.SpeechEventType.RECOGNITION_USAGE,
            recognition_usage=stt.RecognitionUsage(audio_duration=update.end_time - update.start_time),
        )
        self._request_id = shortuuid()

    def _send(self, type: stt.SpeechEventType, **fields: Any) -> None:
        self._event_ch.send_nowait(stt.SpeechEvent(type=type, request_id=self._request_id, **fields))


def _api_error(e: BaseException) -> APIError:
    if isinstance(e, EngineClosedError):
        return APIConnectionError(str(e), retryable=False)
    if isinstance(e, APIError):
        return e  # the engine's own (EngineError: retryable)
    # the engine keeps serving other streams: a new stream (the framework's retry) can succeed
    return APIError(f"local STT streaming failed: {e}", retryable=True)


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
