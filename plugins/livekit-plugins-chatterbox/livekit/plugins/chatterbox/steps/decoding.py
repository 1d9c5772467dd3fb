"""T3 speech-token decoding, one token at a time, for many utterances in one forward pass per step.

Same maths as chatterbox 0.1.7's T3.inference (original model: CFG, learned positions, repetition penalty,
temperature, min-p, top-p) and T3.inference_turbo (no CFG: temperature, top-k, top-p, repetition penalty),
split so the caller can stop between tokens (cancellation), vocode chunks while decoding, and batch the token
steps of concurrent utterances (DecodeBatch). Differences from upstream: cfg_weight=0 runs one row instead of
crashing, attention runs through SDPA (upstream asks for attention maps, which forces the eager kernels),
logits are processed in float32 whatever T3's dtype, and sampling can draw from a per-utterance generator.
A batch's forward pass is all or nothing: when it raises (CUDA out of memory), the batch is as it was before,
and `split` cuts it in halves that can be run one after the other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import DynamicCache
    from transformers.generation.logits_process import LogitsProcessorList

    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.cond_enc import T3Cond

    from ..models import Variant

MAX_NEW_TOKENS = 1000  # upstream's cap: 40 s of speech


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    cfg_weight: float = 0.5
    repetition_penalty: float = 1.2
    min_p: float = 0.05
    top_p: float = 1.0
    top_k: int = 0

    @classmethod
    def for_variant(cls, variant: Variant, *, temperature: float, cfg_weight: float) -> SamplingParams:
        """Upstream generate() defaults; Turbo has no CFG and no min-p."""
        if variant == "turbo":
            return cls(temperature=temperature, cfg_weight=0.0, min_p=0.0, top_p=0.95, top_k=1000)
        return cls(temperature=temperature, cfg_weight=cfg_weight)


def text_tokens(t3: T3, tokens: Tensor, variant: Variant) -> Tensor:
    """(1, T) tokenizer ids -> model input: the original model wraps the text in start/stop text tokens."""
    if variant == "turbo":
        return tokens
    hp = t3.hp
    start = torch.full_like(tokens[:, :1], hp.start_text_token)
    stop = torch.full_like(tokens[:, :1], hp.stop_text_token)
    return torch.cat([start, tokens, stop], dim=1)


class Utterance:
    """One utterance's T3 decoding state. Creating it runs the prompt; tokens then come one per `sample()`.

    Between samples, a DecodeBatch runs the forward pass of the sampled token, together with the other
    utterances of the batch. Run in inference mode.
    """

    def __init__(
        self,
        t3: T3,
        cond: T3Cond,
        text: Tensor,
        variant: Variant,
        params: SamplingParams,
        *,
        max_new_tokens: int = MAX_NEW_TOKENS,
        generator: torch.Generator | None = None,
    ) -> None:
        hp = t3.hp
        device = t3.device
        self._t3 = t3
        self._original = variant == "original"
        self._cfg_weight = params.cfg_weight if self._original else 0.0
        # row 1 is CFG's unconditional row (text embeddings zeroed by prepare_input_embeds)
        self.rows = 2 if self._cfg_weight > 0.0 else 1
        self._max_new_tokens = max_new_tokens
        self._generator = generator
        self._processors = _processors(params, self._original)

        text = text.to(device=device, dtype=torch.long).expand(self.rows, -1)
        start = torch.full((self.rows, 1), hp.start_speech_token, dtype=torch.long, device=device)
        embeds, _ = t3.prepare_input_embeds(
            t3_cond=cond, text_tokens=text, speech_tokens=start, cfg_weight=self._cfg_weight
        )
        if self._original:
            # upstream feeds the start-of-speech token a second time after the prompt
            embeds = torch.cat([embeds, _speech_embedding(t3, start, 0)], dim=1)
        out = t3.tfmr(inputs_embeds=embeds, use_cache=True)
        self.cache: DynamicCache | None = out.past_key_values
        """the prompt's KV cache, until a DecodeBatch takes it over"""
        self.logits: Tensor = _speech_logits(t3, out.last_hidden_state)
        self.length = embeds.shape[1]
        """tokens seen so far: the position of the next input"""
        self.generated = 0
        self._history = start[:1]  # what the repetition penalty sees
        self._token = start[:1]

    def sample(self) -> int | None:
        """The next speech token, from the logits of the last forward pass; None once T3 has stopped."""
        if self.generated >= self._max_new_tokens:
            return None
        logits = self.logits
        if self.rows == 2:
            logits = logits[0:1] + self._cfg_weight * (logits[0:1] - logits[1:2])
        logits = self._processors(self._history, logits)  # type: ignore[arg-type]  # HF annotates Long/FloatTensor
        probs = torch.softmax(logits, dim=-1)
        token = torch.multinomial(probs, num_samples=1, generator=self._generator)  # (1, 1)
        token_id = int(token.item())
        if token_id == self._t3.hp.stop_speech_token:
            return None
        first = self.generated == 0
        self._history = token if first and not self._original else torch.cat([self._history, token], dim=1)
        self._token = token
        self.generated += 1
        return token_id

    def next_input(self) -> Tensor:
        """(rows, 1, dim): the embedding of the last sampled token, at its position."""
        return _speech_embedding(self._t3, self._token.expand(self.rows, 1), self.generated)


class DecodeBatch:
    """Runs the T3 forward pass of a token step for several utterances at once.

    The utterances' KV caches sit in one batch, left-padded to a common length; the attention mask hides the
    padding and each row gets its own positions, so every row computes what it would alone. Joining or
    leaving copies the cache once; a step appends one column.
    """

    def __init__(self, t3: T3) -> None:
        self._t3 = t3
        self._members: list[Utterance] = []
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros(0, 0, dtype=torch.long, device=t3.device)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, utterance: Utterance) -> bool:
        return any(member is utterance for member in self._members)

    @property
    def members(self) -> tuple[Utterance, ...]:
        return tuple(self._members)

    def add(self, utterance: Utterance) -> None:
        cache = utterance.cache
        assert cache is not None, "an utterance joins one batch, once"
        utterance.cache = None
        mask = torch.ones(utterance.rows, utterance.length, dtype=torch.long, device=self._mask.device)
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            for ours, theirs in zip(self._cache.layers, cache.layers, strict=True):
                ours.keys = torch.cat([_left_pad(ours.keys, width), _left_pad(theirs.keys, width)])
                ours.values = torch.cat([_left_pad(ours.values, width), _left_pad(theirs.values, width)])
            self._mask = torch.cat([_left_pad(self._mask, width), _left_pad(mask, width)])
        self._members.append(utterance)

    def remove(self, utterance: Utterance) -> None:
        self._keep([member for member in self._members if member is not utterance])

    def split(self) -> tuple[DecodeBatch, DecodeBatch]:
        """Two batches, of the first and the second half of the members; this batch is left empty."""
        half = len(self._members) // 2
        first, second = DecodeBatch(self._t3), DecodeBatch(self._t3)
        for part, members in ((first, self._members[:half]), (second, self._members[half:])):
            part._members, part._cache, part._mask = self._members, self._cache, self._mask
            part._keep(members)
        self._members, self._cache, self._mask = [], None, self._mask[:0, :0]
        return first, second

    def _keep(self, members: Sequence[Utterance]) -> None:
        """Keep only these members' rows (and drop the columns that are padding in all of them)."""
        keep: list[int] = []
        row = 0
        for member in self._members:
            if any(member is kept for kept in members):
                keep.extend(range(row, row + member.rows))
            row += member.rows
        self._members = list(members)
        if not self._members or self._cache is None:
            self._cache, self._mask = None, self._mask[:0, :0]
            return
        rows = torch.tensor(keep, device=self._mask.device)
        mask = self._mask[rows]
        first = int(mask.any(dim=0).int().argmax())  # columns before it are padding in every row left
        self._mask = mask[:, first:]
        cache = copy.copy(self._cache)  # a split batch's halves must not share layer objects
        cache.layers = [copy.copy(layer) for layer in self._cache.layers]
        for layer in cache.layers:
            layer.keys = layer.keys[rows, :, first:]
            layer.values = layer.values[rows, :, first:]
        self._cache = cache

    def forward(self) -> None:
        """Feed every member its last sampled token (each must have sampled one since the last forward).

        If it raises, the cache is cut back to where it was: the step can be run again, or in halves."""
        members = self._members
        embeds = torch.cat([member.next_input() for member in members])
        positions = torch.cat(
            [torch.full((member.rows, 1), member.length, dtype=torch.long) for member in members]
        ).to(self._mask.device)
        width = self._mask.shape[1]
        mask = torch.cat([self._mask, self._mask.new_ones(len(embeds), 1)], dim=1)
        try:
            out = self._t3.tfmr(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=self._cache,
                use_cache=True,
            )
            logits = _speech_logits(self._t3, out.last_hidden_state)
        except BaseException:
            # the layers that got their new column before the failure lose it again
            assert self._cache is not None
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, :width], layer.values[:, :, :width]
            raise
        self._cache, self._mask = out.past_key_values, mask
        for member, member_logits in zip(members, logits.split([m.rows for m in members]), strict=True):
            member.logits = member_logits
            member.length += 1


def _left_pad(tensor: Tensor, width: int) -> Tensor:
    """Zeros before dim 2 (KV: batch, heads, length, dim) or dim 1 (mask: batch, length), up to `width`."""
    dim = 2 if tensor.dim() == 4 else 1
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _speech_logits(t3: T3, hidden: Tensor) -> Tensor:
    return t3.speech_head(hidden[:, -1, :]).float()


def _speech_embedding(t3: T3, tokens: Tensor, position: int) -> Tensor:
    embeds = t3.speech_emb(tokens)
    if t3.hp.input_pos_emb == "learned":
        embeds = embeds + t3.speech_pos_emb.get_fixed_embedding(position)
    return embeds


def _processors(params: SamplingParams, original: bool) -> LogitsProcessorList:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    # the two upstream loops apply the same processors in different orders
    processors = LogitsProcessorList()
    if original:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty=params.repetition_penalty))
        if params.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(params.temperature))
        processors.append(MinPLogitsWarper(min_p=params.min_p))
        processors.append(TopPLogitsWarper(top_p=params.top_p))
        return processors

    if params.temperature > 0 and params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    return processors
