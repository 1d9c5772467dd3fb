"""T3 speech-token decoding, one token at a time.

Same maths as chatterbox 0.1.7's T3.inference (original model: CFG, learned positions, repetition penalty,
temperature, min-p, top-p) and T3.inference_turbo (no CFG: temperature, top-k, top-p, repetition penalty), as
a generator so the caller can stop between tokens (cancellation) and vocode chunks while decoding.
Differences from upstream: cfg_weight=0 runs one row instead of crashing, attention runs through SDPA
(upstream asks for attention maps, which forces the eager kernels), and logits are processed in float32
whatever T3's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers.generation.logits_process import LogitsProcessorList

    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.cond_enc import T3Cond

    from .models import Variant

MAX_NEW_TOKENS = 1000  # upstream's cap: 40 s of speech
LogitsRule = Callable[[Tensor, int], Tensor]
"""(logits, number of tokens generated so far) -> logits; applied last, before sampling."""


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


def speech_tokens(
    t3: T3,
    cond: T3Cond,
    text: Tensor,
    variant: Variant,
    params: SamplingParams,
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    logits_rule: LogitsRule | None = None,
) -> Iterator[int]:
    """Speech tokens until T3 emits its stop token (not yielded) or max_new_tokens. Run in inference mode."""
    hp = t3.hp
    device = t3.device
    original = variant == "original"
    cfg = original and params.cfg_weight > 0.0
    batch = (
        2 if cfg else 1
    )  # row 1 is CFG's unconditional row (text embeddings zeroed by prepare_input_embeds)
    text = text.to(device=device, dtype=torch.long).expand(batch, -1)
    start = torch.full((batch, 1), hp.start_speech_token, dtype=torch.long, device=device)

    embeds, _ = t3.prepare_input_embeds(
        t3_cond=cond, text_tokens=text, speech_tokens=start, cfg_weight=params.cfg_weight if cfg else 0.0
    )
    if original:
        # upstream feeds the start-of-speech token a second time after the prompt
        embeds = torch.cat([embeds, _speech_embedding(t3, start, 0)], dim=1)
    logits, past = _step(t3, embeds, None)

    processors = _processors(params, original)
    history = start[:1]  # what the repetition penalty sees
    for i in range(max_new_tokens):
        if cfg:
            logits = logits[0:1] + params.cfg_weight * (logits[0:1] - logits[1:2])
        logits = processors(history, logits)  # type: ignore[arg-type]  # HF annotates Long/FloatTensor
        if logits_rule is not None:
            logits = logits_rule(logits, i)
        token = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)  # (1, 1)
        token_id = int(token.item())
        if token_id == hp.stop_speech_token:
            return
        yield token_id

        history = torch.cat([history, token], dim=1) if original or i > 0 else token
        logits, past = _step(t3, _speech_embedding(t3, token.expand(batch, 1), i + 1), past)


def _step(t3: T3, embeds: Tensor, past: object) -> tuple[Tensor, object]:
    out = t3.tfmr(inputs_embeds=embeds, past_key_values=past, use_cache=True)
    return t3.speech_head(out.last_hidden_state[:, -1, :]).float(), out.past_key_values


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
