"""Whole utterances (`transcribe`): one encoder pass over a padded batch and NeMo's batched greedy decoding."""

from __future__ import annotations

import numpy as np

from .decoding import ModelContext


class UtteranceStep:
    """clips (float32 mono) → (text, mean word confidence) each; end-of-utterance markers never reach the text."""

    def __init__(self, context: ModelContext) -> None:
        self.context = context

    def __call__(self, clips: list[np.ndarray]) -> list[tuple[str, float]]:
        c = self.context
        audio, lengths = c.pad(clips)
        with c.autocast():
            encoded, encoded_len = c.model(input_signal=audio, input_signal_length=lengths)
            hyps = c.model.decoding.rnnt_decoder_predictions_tensor(
                encoder_output=encoded, encoded_lengths=encoded_len, return_hypotheses=True
            )
        if c.end_tokens:
            for h in hyps:
                h.text = c.detokenize([t for t in h.y_sequence.tolist() if t not in c.end_tokens])
        return [(h.text, float(np.mean(h.word_confidence)) if h.word_confidence else 0.0) for h in hyps]
