"""LengthBudgetT3: a T3 whose own logits end each utterance once it has spoken its text's speech-token budget.

Random T3 weights never learned when to stop: left alone, generation runs to the 1000-token cap (40 s of audio
per call). This T3 carries that knowledge in the model itself, so the engine drives it like a trained one:
- channel 0 of its input embeddings marks text: `prepare_input_embeds` sets it to 1 at text tokens (not the
  original model's start/stop text tokens) and 0 elsewhere in the prompt; speech embeddings have it at 0;
- its backbone keeps per-position markers (keys: text token, values: generated speech token) in one more layer
  of the KV cache, which batching pads, joins and cuts like the transformer's own layers; each forward pass
  appends a flag to the hidden state: +1 once the utterance has round(tokens_per_text_token × text tokens)
  speech tokens (at least 1), else -1;
- its speech head sets the stop token's logit to the flag × 1e4: forced, or out of reach. Both CFG rows carry the
  same flag, so guidance keeps it.
Audio length therefore follows text length like real speech, and an utterance costs what a real one of that
length costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from transformers.cache_utils import DynamicLayer

from chatterbox.models.t3 import T3

from .builders import TOKENS_PER_CHAR

if TYPE_CHECKING:
    from transformers.cache_utils import Cache

    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.models.t3.modules.t3_config import T3Config

_FORCE = 1e4


class LengthBudgetT3(T3):
    def __init__(self, hp: T3Config, tokens_per_text_token: float = TOKENS_PER_CHAR) -> None:
        super().__init__(hp)
        with torch.no_grad():
            self.speech_emb.weight[:, 0] = 0.0
            if self.speech_pos_emb is not None:
                self.speech_pos_emb.emb.weight[:, 0] = 0.0
        self.tfmr = _BudgetBackbone(self.tfmr, tokens_per_text_token)
        self.speech_head = _BudgetHead(self.dim, hp.speech_tokens_dict_size, hp.stop_speech_token)

    def prepare_input_embeds(
        self,
        *,
        t3_cond: T3Cond,
        text_tokens: torch.LongTensor,
        speech_tokens: torch.LongTensor,
        cfg_weight: float = 0.0,
    ) -> tuple[Tensor, int]:
        embeds, len_cond = super().prepare_input_embeds(
            t3_cond=t3_cond, text_tokens=text_tokens, speech_tokens=speech_tokens, cfg_weight=cfg_weight
        )
        text = torch.ones_like(text_tokens, dtype=torch.bool)
        if not self.is_gpt:
            text &= (text_tokens != self.hp.start_text_token) & (text_tokens != self.hp.stop_text_token)
        marker = embeds.new_zeros(embeds.shape[:2])
        marker[:, len_cond : len_cond + text_tokens.shape[1]] = text.to(marker.dtype)
        return torch.cat([marker[..., None], embeds[..., 1:]], dim=-1), len_cond


class _BudgetBackbone(nn.Module):
    def __init__(self, inner: nn.Module, tokens_per_text_token: float) -> None:
        super().__init__()
        self.inner = inner
        self._rate = tokens_per_text_token
        self._layer: int = inner.config.num_hidden_layers  # the cache layer after the transformer's own

    def forward(self, inputs_embeds: Tensor, past_key_values: Cache | None = None, **kwargs: Any) -> Any:
        if past_key_values is None:  # the prompt
            text = inputs_embeds[..., 0].float()
            speech = torch.zeros_like(text)
        else:  # a generated speech token per row
            speech = inputs_embeds.new_ones(inputs_embeds.shape[:2], dtype=torch.float32)
            text = torch.zeros_like(speech)
        out = self.inner(inputs_embeds=inputs_embeds, past_key_values=past_key_values, **kwargs)
        cache = out.past_key_values
        if len(cache.layers) == self._layer:
            cache.layers.append(DynamicLayer())
        texts, speeches = cache.update(text[:, None, :, None], speech[:, None, :, None], self._layer)
        # left padding is zeros: sums count each row's own positions
        budget = torch.clamp(torch.round(self._rate * texts.sum(dim=(1, 2, 3))), min=1)
        flag = torch.where(speeches.sum(dim=(1, 2, 3)) >= budget, 1.0, -1.0)
        hidden = out.last_hidden_state
        flags = flag.to(hidden.dtype)[:, None, None].expand(-1, hidden.shape[1], 1)
        out.last_hidden_state = torch.cat([hidden, flags], dim=-1)
        return out


class _BudgetHead(nn.Linear):
    def __init__(self, dim: int, n_tokens: int, stop_token: int) -> None:
        super().__init__(dim, n_tokens, bias=True)
        self.stop_token = stop_token

    def forward(self, hidden: Tensor) -> Tensor:
        logits = super().forward(hidden[..., :-1])
        stop = (hidden[..., -1:] * _FORCE).to(logits.dtype)
        return torch.cat([logits[..., : self.stop_token], stop, logits[..., self.stop_token + 1 :]], dim=-1)
