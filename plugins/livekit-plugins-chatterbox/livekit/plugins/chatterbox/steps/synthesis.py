"""SynthesisSteps: the model math the scheduler runs, one method per step of a synthesis.

Every call into the model goes through here, on the engine's worker thread (in inference mode): the prompt pass
that starts an utterance, sampling a token, the batched T3 forward pass, the batched flow call and the HiFT pass
that turns a chunk into PCM. The scheduler times each call (its watchdog) and decides what a failure means. It is
also the seam for fault injection: subclass it and pass an instance to `ChatterboxEngine(steps=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..loading import LoadedModel
from ..models import SAMPLE_RATE
from ..voices import VoiceCache
from .decoding import DecodeBatch, SamplingParams, Utterance, text_tokens
from .vocoder import ChunkVocoder, FlowInput, run_flow

SPEECH_CODES = 6561
"""S3 tokenizer codebook; larger ids are T3 control tokens"""
_TURBO_TAIL_SILENCE = 3  # Turbo's generate() ends every utterance on 3 silence tokens


class SynthesisSteps:
    """The steps of Chatterbox synthesis for one loaded model. Not thread-safe: the worker thread's."""

    def __init__(self, model: LoadedModel) -> None:
        if model.variant == "turbo":
            from chatterbox.tts_turbo import punc_norm
        else:
            from chatterbox.tts import punc_norm
        self._punc_norm: Callable[[str], str] = punc_norm
        self.model = model
        self.voices = VoiceCache(model)
        self._meanflow = model.variant == "turbo"
        self._flow_steps = model.n_cfm_timesteps or (2 if self._meanflow else 10)

    def new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.model.tts.t3)

    def prepare(
        self,
        text: str,
        *,
        voice: str | None,
        exaggeration: float,
        params: SamplingParams,
        seed: int | None,
    ) -> tuple[Utterance, ChunkVocoder]:
        """The voice's conditionals (cached), then T3's prompt pass: a decoder ready to sample, and a vocoder."""
        model = self.model
        conds = self.voices.get(voice, exaggeration)
        decoder = Utterance(
            model.tts.t3,
            conds.t3,
            self._text_tokens(self._punc_norm(text)),
            model.variant,
            params,
            generator=self._generator(seed),
        )
        vocoder = ChunkVocoder(
            model.tts.s3gen,
            conds.gen,
            n_timesteps=self._flow_steps,
            meanflow=self._meanflow,
            generator=self._generator(seed),
        )
        return decoder, vocoder

    def sample(self, decoder: Utterance) -> int | None:
        """The next token (a speech code below SPEECH_CODES, or a control token); None once T3 has stopped."""
        return decoder.sample()

    def end_tokens(self) -> list[int]:
        """Speech tokens appended to an utterance that said something, once T3 has stopped."""
        if self.model.variant != "turbo":
            return []
        from chatterbox.models.s3gen.const import S3GEN_SIL

        return [S3GEN_SIL] * _TURBO_TAIL_SILENCE

    def decode(self, batch: DecodeBatch) -> None:
        """One T3 forward pass for every member of the batch. All or nothing (see DecodeBatch.forward)."""
        batch.forward()

    def flow_input(self, vocoder: ChunkVocoder, tokens: Sequence[int], *, final: bool) -> FlowInput | None:
        return vocoder.flow_input(tokens, final=final)

    def flow(self, rows: Sequence[FlowInput]) -> list[Tensor]:
        """The new mel frames of each row, from one batched flow call."""
        return run_flow(self.model.tts.s3gen, rows, n_timesteps=self._flow_steps, meanflow=self._meanflow)

    def audio(self, vocoder: ChunkVocoder, mels: Tensor | None, *, final: bool, watermark: bool) -> bytes:
        """HiFT on the chunk's new frames: int16 mono PCM at 24 kHz, watermarked if asked."""
        audio = vocoder.vocode(mels, final=final).float().cpu().numpy()
        if len(audio) == 0:
            return b""
        if watermark:
            audio = self.model.tts.watermarker.apply_watermark(audio, sample_rate=SAMPLE_RATE)
        return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()

    def _generator(self, seed: int | None) -> torch.Generator | None:
        return None if seed is None else torch.Generator(self.model.device).manual_seed(seed)

    def _text_tokens(self, text: str) -> Tensor:
        tokenizer = self.model.tts.tokenizer
        if self.model.variant == "turbo":
            ids = tokenizer(text, return_tensors="pt").input_ids
        else:
            ids = tokenizer.text_to_tokens(text)
        return text_tokens(self.model.tts.t3, ids, self.model.variant)
