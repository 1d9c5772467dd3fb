from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from livekit.agents import APIConnectOptions, APIError, tokenize, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from .chunking import ReplyChunker, default_sentence_tokenizer
from .engine import ChatterboxEngine, load_engine
from .handle import SynthesisHandle
from .loading import ModelLoadError
from .models import DEFAULT_CHUNK_TOKENS, DEFAULT_MODEL, SAMPLE_RATE, TTSModels
from .normalize import normalize_for_speech


@dataclass
class _TTSOptions:
    model: str
    device: str
    dtype: str
    watermark: bool
    voice: str | None
    exaggeration: float
    cfg_weight: float
    temperature: float
    first_fragment_min_words: int
    sentence_tokenizer: tokenize.SentenceTokenizer
    chunk_tokens: tuple[int, ...]
    normalize_text: bool


class TTS(tts.TTS):
    def __init__(
        self,
        *,
        model: TTSModels | str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "float32",
        watermark: bool = True,
        voice: str | None = None,
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
        temperature: float = 0.8,
        engine: ChatterboxEngine | None = None,
        first_fragment_min_words: int = 4,
        sentence_tokenizer: tokenize.SentenceTokenizer | None = None,
        chunk_tokens: Sequence[int] = DEFAULT_CHUNK_TOKENS,
        normalize_text: bool = True,
    ) -> None:
        """Local Resemble AI Chatterbox TTS, 24 kHz mono, streamed chunk by chunk.

        Cheap to create (one per session): the model lives in a ChatterboxEngine shared by the process,
        loaded on first use or by prewarm() (see load_engine for model, device and dtype). Pass `engine` to use
        an engine you loaded yourself; model, device and dtype are then ignored.

        Args:
            model: Hugging Face repo id or local checkpoint directory. (A synthetic-* random-weight model is
                loaded by livekit.plugins.chatterbox.testing: pass its engine.)
            voice: reference audio file to clone; None for the model's built-in voice.
            exaggeration: emotion intensity (original model only); 0.5 is neutral.
            cfg_weight: classifier-free guidance weight (original model only); lower it for fast speakers.
            temperature: sampling temperature of the speech tokens.
            first_fragment_min_words: the first unit of a reply may end at a comma, semicolon or colon
                after at least this many words, so speech starts sooner; 0 waits for a whole sentence.
            sentence_tokenizer: livekit sentence tokenizer for the rest of the reply.
            chunk_tokens: speech tokens (40 ms each) per vocoded chunk of a unit: the first chunk's size, the
                second's, ... (the last repeats). A small first chunk gives early first audio.
            normalize_text: speak markdown, emoji, numbers, money, units, abbreviations and URLs sensibly
                (normalize.normalize_for_speech); the transcript keeps the original text.
        """
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True), sample_rate=SAMPLE_RATE, num_channels=1
        )
        if temperature <= 0.0:
            raise ValueError("temperature must be positive")
        if not chunk_tokens or min(chunk_tokens) < 1:
            raise ValueError("chunk_tokens must be positive token counts")
        self._opts = _TTSOptions(
            model=engine.model_name if engine is not None else model,
            device=device,
            dtype=dtype,
            watermark=watermark,
            voice=voice,
            exaggeration=exaggeration,
            cfg_weight=cfg_weight,
            temperature=temperature,
            first_fragment_min_words=first_fragment_min_words,
            sentence_tokenizer=sentence_tokenizer or default_sentence_tokenizer(),
            chunk_tokens=tuple(chunk_tokens),
            normalize_text=normalize_text,
        )
        self._load_lock = threading.Lock()
        self._engine_load: concurrent.futures.Future[ChatterboxEngine] | None = None
        if engine is not None:
            self._engine_load = concurrent.futures.Future()
            self._engine_load.set_result(engine)

    @property
    def model(self) -> str:
        return self._opts.model

    @property
    def provider(self) -> str:
        return "Chatterbox"

    def prewarm(self) -> None:
        """Start loading the engine in a background thread; returns at once."""
        self._engine_future()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return self._synthesize_with_stream(text, conn_options=conn_options)

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        return SynthesizeStream(tts=self, conn_options=conn_options)

    async def _get_engine(self) -> ChatterboxEngine:
        try:
            return await asyncio.wrap_future(self._engine_future())
        except ModelLoadError as e:
            raise APIError(str(e), retryable=False) from e

    def _engine_future(self) -> concurrent.futures.Future[ChatterboxEngine]:
        with self._load_lock:
            # a failed load is tried again by the next stream
            if self._engine_load is None or (
                self._engine_load.done() and self._engine_load.exception() is not None
            ):
                future: concurrent.futures.Future[ChatterboxEngine] = concurrent.futures.Future()
                future.set_running_or_notify_cancel()  # waiters being cancelled must not cancel the load
                threading.Thread(
                    target=self._load_engine, args=(future,), name="chatterbox-load", daemon=True
                ).start()
                self._engine_load = future
            return self._engine_load

    def _load_engine(self, future: concurrent.futures.Future[ChatterboxEngine]) -> None:
        opts = self._opts
        try:
            future.set_result(load_engine(opts.model, opts.device, opts.dtype))
        except BaseException as e:  # noqa: BLE001 - waiting streams must see every failure
            future.set_exception(e)


class SynthesizeStream(tts.SynthesizeStream):
    def __init__(self, *, tts: TTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._tts: TTS = tts
        self._opts = tts._opts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        request_id = utils.shortuuid()
        output_emitter.initialize(
            request_id=request_id,
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            stream=True,
        )
        output_emitter.start_segment(segment_id=utils.shortuuid())
        engine = await self._tts._get_engine()
        chunker = ReplyChunker(self._opts.sentence_tokenizer, self._opts.first_fragment_min_words)
        handles: asyncio.Queue[SynthesisHandle | None] = asyncio.Queue()
        submitted: list[SynthesisHandle] = []

        async def _forward_input() -> None:
            async for data in self._input_ch:
                if isinstance(data, self._FlushSentinel):
                    chunker.flush()
                else:
                    chunker.push_text(data)
            chunker.end_input()

        async def _submit() -> None:
            # every unit is queued on the engine as soon as it is known: no gap between sentences
            async for unit in chunker:
                text = normalize_for_speech(unit) if self._opts.normalize_text else unit
                if not text:
                    continue  # nothing to say: markup or emoji only
                self._mark_started()
                handle = engine.synthesize(
                    text,
                    voice=self._opts.voice,
                    exaggeration=self._opts.exaggeration,
                    cfg_weight=self._opts.cfg_weight,
                    temperature=self._opts.temperature,
                    watermark=self._opts.watermark,
                    chunk_tokens=self._opts.chunk_tokens,
                    stream=request_id,  # the reply's units in order; other replies take turns with them
                )
                submitted.append(handle)
                handles.put_nowait(handle)
            handles.put_nowait(None)

        async def _play() -> None:
            while (handle := await handles.get()) is not None:
                async for pcm in handle:
                    output_emitter.push(pcm)
                output_emitter.flush()

        tasks = [
            asyncio.create_task(_forward_input(), name="chatterbox.forward_input"),
            asyncio.create_task(_submit(), name="chatterbox.submit"),
            asyncio.create_task(_play(), name="chatterbox.play"),
        ]
        try:
            # a failed request raises SynthesisError, an APIError: retryable unless the engine is gone
            await asyncio.gather(*tasks)
            if not submitted:
                # nothing speakable (markup or emoji only): livekit fails a reply without audio, so 20 ms of silence
                output_emitter.push(bytes(SAMPLE_RATE // 50 * 2))
        finally:
            # interrupted or failed: stop the GPU work of this reply and drop what is still queued
            for handle in submitted:
                handle.cancel()
            await utils.aio.cancel_and_wait(*tasks)
            await chunker.aclose()
        output_emitter.end_segment()
