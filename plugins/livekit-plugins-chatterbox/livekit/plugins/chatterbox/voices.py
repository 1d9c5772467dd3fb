"""Voice conditionals: what T3 and S3Gen need to speak in a voice, computed once per voice and reused."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from chatterbox.tts import Conditionals

    from .loading import LoadedModel

_TURBO_MIN_REFERENCE_S = 5.0


def conditionals_from_audio(model: LoadedModel, wav: np.ndarray, exaggeration: float) -> Conditionals:
    """Conditionals from a mono float reference at 24 kHz.

    Does what ChatterboxTTS.prepare_conditionals does, without storing the result on the model (conditionals
    are per request here) and keeping audio float32: under numpy 2, Turbo's loudness normalization returns
    float64, which the S3 tokenizer rejects.
    """
    import librosa

    from chatterbox.models.s3gen import S3GEN_SR
    from chatterbox.models.s3tokenizer import S3_SR
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.tts import Conditionals

    tts = model.tts
    wav = np.asarray(wav, dtype=np.float32)
    if model.variant == "turbo":
        wav = np.asarray(tts.norm_loudness(wav, S3GEN_SR), dtype=np.float32)
    wav_16k = librosa.resample(wav, orig_sr=S3GEN_SR, target_sr=S3_SR)

    gen = tts.s3gen.embed_ref(wav[: tts.DEC_COND_LEN], S3GEN_SR, device=tts.device)
    prompt_tokens = None
    if prompt_len := tts.t3.hp.speech_cond_prompt_len:
        prompt_tokens, _ = tts.s3gen.tokenizer.forward([wav_16k[: tts.ENC_COND_LEN]], max_len=prompt_len)
        prompt_tokens = torch.atleast_2d(prompt_tokens).to(tts.device)
    speaker = torch.from_numpy(tts.ve.embeds_from_wavs([wav_16k], sample_rate=S3_SR)).mean(0, keepdim=True)
    t3_cond = T3Cond(
        speaker_emb=speaker,
        cond_prompt_speech_tokens=prompt_tokens,
        emotion_adv=exaggeration * torch.ones(1, 1, 1),
    ).to(device=model.device, dtype=model.dtype)
    return Conditionals(t3_cond, gen)


def conditionals_from_file(model: LoadedModel, path: str, exaggeration: float) -> Conditionals:
    import librosa

    from chatterbox.models.s3gen import S3GEN_SR

    wav, _ = librosa.load(path, sr=S3GEN_SR, mono=True)
    if model.variant == "turbo" and len(wav) / S3GEN_SR <= _TURBO_MIN_REFERENCE_S:
        raise ValueError(
            f"Chatterbox-Turbo needs a reference voice longer than {_TURBO_MIN_REFERENCE_S:g} s: {path}"
        )
    return conditionals_from_audio(model, wav, exaggeration)


def with_exaggeration(model: LoadedModel, conds: Conditionals, exaggeration: float) -> Conditionals:
    """The same voice with another emotion exaggeration (the built-in voice is stored with one value)."""
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.tts import Conditionals

    t3_cond = T3Cond(
        speaker_emb=conds.t3.speaker_emb,
        cond_prompt_speech_tokens=conds.t3.cond_prompt_speech_tokens,
        emotion_adv=exaggeration * torch.ones(1, 1, 1),
    ).to(device=model.device, dtype=model.dtype)
    return Conditionals(t3_cond, conds.gen)


class VoiceCache:
    """Conditionals per (voice, exaggeration), computed on first use. Not thread-safe: engine thread only.

    voice None is the model's built-in voice; otherwise a reference audio file, keyed by path and modification
    time so that an edited file is prepared again.
    """

    def __init__(self, model: LoadedModel, max_voices: int = 64) -> None:
        self._model = model
        self._max_voices = max_voices
        self._cache: OrderedDict[tuple[str | None, int, float], Conditionals] = OrderedDict()
        self.prepared = 0
        """number of conditionals computed so far (cache misses)"""

    def get(self, voice: str | None, exaggeration: float) -> Conditionals:
        if voice is None:
            key: tuple[str | None, int, float] = (None, 0, exaggeration)
        else:
            path = Path(voice).expanduser().resolve()
            key = (str(path), path.stat().st_mtime_ns, exaggeration)
        if (conds := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return conds

        conds = self._prepare(voice, exaggeration)
        self.prepared += 1
        self._cache[key] = conds
        if len(self._cache) > self._max_voices:
            self._cache.popitem(last=False)
        return conds

    def _prepare(self, voice: str | None, exaggeration: float) -> Conditionals:
        if voice is not None:
            return conditionals_from_file(self._model, voice, exaggeration)
        builtin = self._model.tts.conds
        if builtin is None:
            raise ValueError(
                f"model {self._model.name!r} has no built-in voice (conds.pt): pass voice=<reference audio>"
            )
        return with_exaggeration(self._model, builtin, exaggeration)
