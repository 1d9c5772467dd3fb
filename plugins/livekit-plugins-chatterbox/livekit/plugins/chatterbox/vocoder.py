"""Causal chunk-by-chunk vocoding of one utterance (S3Gen flow, then HiFT) with inaudible seams.

The scheme of CosyVoice's streaming token2wav:
- Flow: each call re-runs the flow on the utterance's tokens so far, from CONTEXT_TOKENS before the first new
  frame (its attention is not causal: context shapes the frames; the window keeps a late chunk of a long
  sentence as cheap as an early one), and keeps only the mel frames it had not produced before. Until the
  utterance is final, the frames of the last `pre_lookahead_len` tokens are left out (as `finalize=False`):
  they depend on tokens not generated yet. The flow's noise is drawn once per utterance, so a frame gets the
  same noise in every call.
- HiFT: each call re-vocodes the previous call's last MEL_CACHE mel frames with that call's excitation signal
  (`cache_source`), so the sine source continues in phase. The audio of those frames is held back from each
  non-final chunk and crossfaded with its new rendering in the next call.
The chunks together have exactly 480 samples per mel frame, 960 per token: the length of a one-shot synthesis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from chatterbox.models.s3gen import S3Gen

CONTEXT_TOKENS = 50  # 2 s
MEL_CACHE = 8
HOP = 480  # samples per mel frame (24 kHz, 50 Hz mels)
TAIL = MEL_CACHE * HOP  # 160 ms held back from each non-final chunk
_MELS = 80
_MELS_PER_TOKEN = 2


def crossfade(fading_out: Tensor, fading_in: Tensor) -> Tensor:
    """Equal-gain raised-cosine crossfade of two equally long (..., N) signals: the weights sum to 1."""
    n = fading_in.shape[-1]
    ramp = torch.sin(0.5 * math.pi * (torch.arange(n, device=fading_in.device) + 0.5) / n) ** 2
    return fading_out * (1.0 - ramp) + fading_in * ramp


class ChunkVocoder:
    """Turns one utterance's speech tokens into audio, chunk by chunk, as they are generated."""

    def __init__(
        self, s3gen: S3Gen, ref: dict[str, Tensor | None], *, n_timesteps: int, meanflow: bool
    ) -> None:
        self._s3gen = s3gen
        self._ref = ref
        self._n_timesteps = n_timesteps
        self._meanflow = meanflow
        self._lookahead: int = s3gen.flow.pre_lookahead_len
        self._device = s3gen.device
        self._dtype = s3gen.dtype
        self._tokens = torch.empty(0, dtype=torch.long, device=self._device)
        self._noise = torch.empty(1, _MELS, 0, dtype=self._dtype, device=self._device)
        self._frames = 0  # mel frames produced by the flow so far
        self._pending = torch.empty(1, _MELS, 0, dtype=self._dtype, device=self._device)
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None  # last mels, their source, their audio
        self._faded_in = False

    def push(self, tokens: Sequence[int], *, final: bool) -> Tensor:
        """Add speech tokens; return the float audio (1-D, 24 kHz, on the model's device) now complete.

        After `final=True` the utterance is done and everything has been returned.
        """
        if tokens:
            new = torch.tensor(tokens, dtype=torch.long, device=self._device)
            self._tokens = torch.cat([self._tokens, new])
        self._pending = torch.cat([self._pending, self._flow(final)], dim=2)
        if self._pending.shape[2] == 0 and self._cache is None:
            return self._pending.new_zeros(0)  # no speech at all
        # without a cache, the first MEL_CACHE frames are held back whole: wait until there is more
        if not final and self._pending.shape[2] <= (0 if self._cache is not None else MEL_CACHE):
            return self._pending.new_zeros(0)
        mels, self._pending = self._pending, self._pending[:, :, :0]
        return self._hift(mels, final)

    def _flow(self, final: bool) -> Tensor:
        """The new mel frames. Same maths as CausalMaskedDiffWithXvec.inference, whose finalize=False is broken
        in chatterbox 0.1.7 (its mask keeps the dropped lookahead frames) and whose noise cannot be fixed."""
        n_tokens = len(self._tokens)
        if _MELS_PER_TOKEN * (n_tokens if final else n_tokens - self._lookahead) <= self._frames:
            return self._pending[:, :, :0]
        flow, ref = self._s3gen.flow, self._ref
        prompt_tokens, prompt_mels = ref["prompt_token"], ref["prompt_feat"]
        assert prompt_tokens is not None and prompt_mels is not None and ref["embedding"] is not None
        speaker = flow.spk_embed_affine_layer(F.normalize(torch.atleast_2d(ref["embedding"]), dim=1))
        start = max(0, self._frames // _MELS_PER_TOKEN - CONTEXT_TOKENS)
        tokens = torch.cat([prompt_tokens.reshape(1, -1), self._tokens[start:].unsqueeze(0)], dim=1)
        h, _ = flow.encoder(
            flow.input_embedding(tokens), torch.tensor([tokens.shape[1]], device=self._device)
        )
        if not final:
            h = h[:, : -self._lookahead * flow.token_mel_ratio]
        mu = flow.encoder_proj(h).transpose(1, 2).contiguous()  # (1, 80, prompt + generated frames)
        n_prompt = prompt_mels.shape[1]
        offset = _MELS_PER_TOKEN * start  # frame index of this window's first generated frame
        frames = offset + mu.shape[2] - n_prompt
        if frames > self._noise.shape[2]:
            more = torch.randn(
                1, _MELS, frames - self._noise.shape[2], dtype=self._dtype, device=self._device
            )
            self._noise = torch.cat([self._noise, more], dim=2)
        cond = torch.zeros_like(mu)
        cond[:, :, :n_prompt] = prompt_mels.transpose(1, 2)
        mels, _ = flow.decoder(
            mu=mu,
            mask=torch.ones_like(mu[:, :1]),
            spks=speaker,
            cond=cond,
            n_timesteps=self._n_timesteps,
            noised_mels=self._noise[:, :, offset:frames],
            meanflow=self._meanflow,
        )
        new = mels[:, :, n_prompt + self._frames - offset :].to(self._dtype)
        self._frames = frames
        return new

    def _hift(self, mels: Tensor, final: bool) -> Tensor:
        if self._cache is not None:
            cached_mels, source, held_audio = self._cache
            mels = torch.cat([cached_mels, mels], dim=2)
        else:
            source = torch.zeros(1, 1, 0, dtype=self._dtype, device=self._device)
        wav, new_source = self._s3gen.mel2wav.inference(speech_feat=mels, cache_source=source)
        wav = wav[0]
        if not self._faded_in:
            # as S3Gen.inference: silence and fade in the start, against spill-over from the reference clip
            fade = self._s3gen.trim_fade[: len(wav)]
            wav[: len(fade)] *= fade
            self._faded_in = True
        if self._cache is not None:
            wav[:TAIL] = crossfade(held_audio, wav[:TAIL])
        if final:
            self._cache = None
            return wav
        self._cache = (mels[:, :, -MEL_CACHE:], new_source[:, :, -TAIL:], wav[-TAIL:])
        return wav[:-TAIL]
