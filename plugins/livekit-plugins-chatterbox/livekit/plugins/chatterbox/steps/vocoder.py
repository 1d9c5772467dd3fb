"""Causal chunk-by-chunk vocoding of one utterance (S3Gen flow, then HiFT) with inaudible seams.

The scheme of CosyVoice's streaming token2wav:
- Flow: each call re-runs the flow on the utterance's tokens so far, from CONTEXT_TOKENS before the first new
  frame (its attention is not causal: context shapes the frames; the window keeps a late chunk of a long
  sentence as cheap as an early one), and keeps only the mel frames it had not produced before. Until the
  utterance is final, the frames of the last `pre_lookahead_len` tokens are left out (as `finalize=False`):
  they depend on tokens not generated yet. The flow's noise (prompt frames included) is drawn once per
  utterance, from the utterance's generator when it has one, so a frame gets the same noise in every call.
  The flow-matching loop is ours (upstream's meanflow loop prints a line and a tqdm bar per call).
- HiFT: each call re-vocodes the previous call's last MEL_CACHE mel frames with that call's excitation signal
  (`cache_source`), so the sine source continues in phase. The audio of those frames is held back from each
  non-final chunk and crossfaded with its new rendering in the next call.
The chunks together have exactly 480 samples per mel frame, 960 per token: the length of a one-shot synthesis.

The flow step of several utterances runs as one batch (`run_flow`): rows padded at the end, the flow's own
length masks keep them apart (its convolutions are causal or see masked zeros, its attention masks padded keys).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class FlowInput:
    """One utterance's row of a flow call: its window of frames (prompt frames first)."""

    mu: Tensor
    """(80, T) encoder output"""
    noise: Tensor
    """(80, T)"""
    cond: Tensor
    """(80, T) the prompt's mels, zeros after them"""
    speaker: Tensor
    """(80,) projected speaker embedding"""
    new_from: int
    """index of the window's first frame not produced before"""


def run_flow(s3gen: S3Gen, rows: Sequence[FlowInput], *, n_timesteps: int, meanflow: bool) -> list[Tensor]:
    """The new mel frames (1, 80, n) of each row, from one batched CausalConditionalCFM run."""
    width = max(row.mu.shape[1] for row in rows)

    def stack(tensors: list[Tensor]) -> Tensor:
        return torch.stack([F.pad(t, (0, width - t.shape[1])) for t in tensors])

    mu, noise, cond = (stack([getattr(row, name) for row in rows]) for name in ("mu", "noise", "cond"))
    mask = torch.zeros(len(rows), 1, width, dtype=mu.dtype, device=mu.device)
    for i, row in enumerate(rows):
        mask[i, :, : row.mu.shape[1]] = 1
    speaker = torch.stack([row.speaker for row in rows])
    mels = _decode(s3gen, noise, mu, mask, speaker, cond, n_timesteps=n_timesteps, meanflow=meanflow)
    return [mels[i : i + 1, :, row.new_from : row.mu.shape[1]] for i, row in enumerate(rows)]


def _decode(
    s3gen: S3Gen,
    noise: Tensor,
    mu: Tensor,
    mask: Tensor,
    speaker: Tensor,
    cond: Tensor,
    *,
    n_timesteps: int,
    meanflow: bool,
) -> Tensor:
    """CausalConditionalCFM.forward from the given noise: Euler steps (with CFG), or meanflow's steps."""
    decoder = s3gen.flow.decoder
    t_span = torch.linspace(0, 1, n_timesteps + 1, device=mu.device, dtype=mu.dtype)
    if not meanflow:
        if decoder.t_scheduler == "cosine":
            t_span = 1 - torch.cos(t_span * 0.5 * torch.pi)
        return decoder.solve_euler(noise, t_span=t_span, mu=mu, mask=mask, spks=speaker, cond=cond)
    dtype = decoder.estimator.dtype
    x, t_span, mu, mask, speaker, cond = (v.to(dtype) for v in (noise, t_span, mu, mask, speaker, cond))
    ones = torch.ones(len(x), dtype=dtype, device=x.device)
    for t, r in itertools.pairwise(t_span):
        t, r = t * ones, r * ones
        x = x + (r - t)[:, None, None] * decoder.estimator(
            x, mask=mask, mu=mu, t=t, spks=speaker, cond=cond, r=r
        )
    return x.to(noise.dtype)


class ChunkVocoder:
    """Turns one utterance's speech tokens into audio, chunk by chunk, as they are generated."""

    def __init__(
        self,
        s3gen: S3Gen,
        ref: dict[str, Tensor | None],
        *,
        n_timesteps: int,
        meanflow: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        self._s3gen = s3gen
        self._ref = ref
        self._n_timesteps = n_timesteps
        self._meanflow = meanflow
        self._lookahead: int = s3gen.flow.pre_lookahead_len
        self._device = s3gen.device
        self._dtype = s3gen.dtype
        self._tokens = torch.empty(0, dtype=torch.long, device=self._device)
        self._generator = generator
        prompt_mels = ref["prompt_feat"]
        assert prompt_mels is not None
        self._prompt_noise = self._randn(prompt_mels.shape[1])
        self._noise = self._randn(0)
        self._frames = 0  # mel frames produced by the flow so far
        self._pending = torch.empty(1, _MELS, 0, dtype=self._dtype, device=self._device)
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None  # last mels, their source, their audio
        self._faded_in = False

    def push(self, tokens: Sequence[int], *, final: bool) -> Tensor:
        """Add speech tokens; return the float audio (1-D, 24 kHz, on the model's device) now complete.

        After `final=True` the utterance is done and everything has been returned.
        """
        row = self.flow_input(tokens, final=final)
        mels = None
        if row is not None:
            (mels,) = run_flow(self._s3gen, [row], n_timesteps=self._n_timesteps, meanflow=self._meanflow)
        return self.vocode(mels, final=final)

    def flow_input(self, tokens: Sequence[int], *, final: bool) -> FlowInput | None:
        """First half of `push`: add the tokens; the flow's input for the frames they complete (None: none).

        Its frames, from `run_flow` (alone or batched with other utterances' rows), go to `vocode`.
        """
        if tokens:
            new = torch.tensor(tokens, dtype=torch.long, device=self._device)
            self._tokens = torch.cat([self._tokens, new])
        return self._flow(final)

    def vocode(self, mels: Tensor | None, *, final: bool) -> Tensor:
        """Second half of `push`: the audio now complete, given the new frames from `run_flow`."""
        if mels is not None:
            self._pending = torch.cat([self._pending, mels.to(self._dtype)], dim=2)
        if self._pending.shape[2] == 0 and self._cache is None:
            return self._pending.new_zeros(0)  # no speech at all
        # without a cache, the first MEL_CACHE frames are held back whole: wait until there is more
        if not final and self._pending.shape[2] <= (0 if self._cache is not None else MEL_CACHE):
            return self._pending.new_zeros(0)
        mels, self._pending = self._pending, self._pending[:, :, :0]
        return self._hift(mels, final)

    def _flow(self, final: bool) -> FlowInput | None:
        """The flow's input for the new mel frames. Same maths as CausalMaskedDiffWithXvec.inference, whose
        finalize=False is broken in chatterbox 0.1.7 (its mask keeps the dropped lookahead frames) and whose
        noise cannot be fixed."""
        n_tokens = len(self._tokens)
        if _MELS_PER_TOKEN * (n_tokens if final else n_tokens - self._lookahead) <= self._frames:
            return None
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
        mu = flow.encoder_proj(h)[0].transpose(0, 1).contiguous()  # (80, prompt + generated frames)
        n_prompt = prompt_mels.shape[1]
        offset = _MELS_PER_TOKEN * start  # frame index of this window's first generated frame
        frames = offset + mu.shape[1] - n_prompt
        if frames > self._noise.shape[2]:
            self._noise = torch.cat([self._noise, self._randn(frames - self._noise.shape[2])], dim=2)
        cond = torch.zeros_like(mu)
        cond[:, :n_prompt] = prompt_mels[0].transpose(0, 1)
        noise = torch.cat([self._prompt_noise, self._noise[:, :, offset:frames]], dim=2)[0]
        row = FlowInput(mu, noise, cond, speaker[0], n_prompt + self._frames - offset)
        self._frames = frames
        return row

    def _run_hift(self, mels: Tensor, source: Tensor) -> tuple[Tensor, Tensor]:
        hift = self._s3gen.mel2wav
        if self._generator is None:
            return hift.inference(speech_feat=mels, cache_source=source)
        # HiFT's excitation draws from the global RNG: seed it from the utterance's generator
        seed = int(torch.randint(2**62, (1,), device=self._device, generator=self._generator))
        with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []):
            torch.manual_seed(seed)
            return hift.inference(speech_feat=mels, cache_source=source)

    def _randn(self, frames: int) -> Tensor:
        return torch.randn(
            1, _MELS, frames, dtype=self._dtype, device=self._device, generator=self._generator
        )

    def _hift(self, mels: Tensor, final: bool) -> Tensor:
        if self._cache is not None:
            cached_mels, source, held_audio = self._cache
            mels = torch.cat([cached_mels, mels], dim=2)
        else:
            source = torch.zeros(1, 1, 0, dtype=self._dtype, device=self._device)
        wav, new_source = self._run_hift(mels, source)
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
