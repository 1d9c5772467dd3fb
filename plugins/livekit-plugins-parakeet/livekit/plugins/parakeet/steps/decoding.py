"""What every step shares: the model on its device (rates, padded batches, autocast, detokenizing) and greedy
label-looping decoding that carries each stream's decoder state from one step to the next."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..models import END_OF_UTTERANCE_TOKENS
from ..streaming import StepOutput

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTModel

MIN_SECONDS = 0.1  # shorter input is zero-padded: the mel front end needs a few STFT windows

Decode = Callable[[list[torch.Tensor], list[Any], list[int]], list[StepOutput]]
"""(each stream's new encoder frames [T, D], decoder states, frames encoded) → one output per stream"""


class ModelContext:
    """One NeMo transducer on its device, as the steps use it."""

    def __init__(self, model: EncDecRNNTModel, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.sample_rate = int(model.cfg.sample_rate)
        # one encoder frame: the mel hop times the encoder's subsampling
        self.frame_seconds = float(model.cfg.preprocessor.window_stride) * int(
            model.encoder.subsampling_factor
        )
        self.end_tokens = end_of_utterance_ids(model.tokenizer)

    def detokenize(self, ids: list[int]) -> str:
        return str(self.model.tokenizer.ids_to_text(ids))

    def pad(self, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """A zero-padded batch on the device, and the lengths (each at least MIN_SECONDS)."""
        min_samples = int(MIN_SECONDS * self.sample_rate)
        lengths = torch.tensor([max(len(c), min_samples) for c in clips])
        audio = torch.zeros(len(clips), int(lengths.max()))
        for i, clip in enumerate(clips):
            audio[i, : len(clip)] = torch.from_numpy(clip)
        return audio.to(self.device), lengths.to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)


class Decoder:
    """Greedy label-looping decoding of each stream's new encoder frames in one batch, carrying each stream's
    decoder state (LSTM state, last label, TDT time jump) through `merge_to_batched_state` /
    `split_batched_state`, so that any set of streams can share a step."""

    def __init__(self, context: ModelContext) -> None:
        self._context = context

    def __call__(self, chunks: list[torch.Tensor], states: list[Any], frames: list[int]) -> list[StepOutput]:
        from nemo.collections.asr.parts.utils.rnnt_utils import batched_hyps_to_hypotheses

        computer = self._context.model.decoding.decoding.decoding_computer
        counts = [len(c) for c in chunks]
        x = chunks[0].new_zeros(len(chunks), max(counts), chunks[0].shape[1])
        for b, chunk in enumerate(chunks):
            x[b, : len(chunk)] = chunk
        prev = None if all(s is None for s in states) else computer.merge_to_batched_state(list(states))
        hyps, state = computer(
            x=x, out_len=torch.tensor(counts, device=self._context.device), prev_batched_state=prev
        )
        hypotheses = batched_hyps_to_hypotheses(hyps, batch_size=len(chunks))
        return [
            StepOutput(
                tokens=h.y_sequence.tolist(),
                confidences=list(h.non_blank_step_confidence_precomputed or []),
                decoder_state=_clone(item),
                frames_encoded=n,
            )
            for h, item, n in zip(hypotheses, computer.split_batched_state(state), frames, strict=True)
        ]


def end_of_utterance_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the vocabulary's END_OF_UTTERANCE_TOKENS (none for most models)."""
    vocab = set(tokenizer.vocab)
    return frozenset(tokenizer.token_to_id(t) for t in END_OF_UTTERANCE_TOKENS if t in vocab)


def _clone(value: Any) -> Any:
    """A deep copy of a decoder state item's tensors: the CUDA-graph decoder reuses its state buffers."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _clone(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value
