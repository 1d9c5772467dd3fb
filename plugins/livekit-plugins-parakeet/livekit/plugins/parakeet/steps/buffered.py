"""Buffered streaming for offline-trained transducers (parakeet-tdt/rnnt): the per-stream bookkeeping.

Each engine step re-encodes a window ``[left | chunk | right]`` of a stream's audio and decodes only the
chunk's encoder frames, carrying the label-looping decoder state from one chunk to the next; the right
context improves the chunk's frames and is decoded again as part of the next chunk. A flush ends the
segment: one last step over whatever audio is left (with no right context) gives the final transcript, and
the next segment starts fresh, so a segment is transcribed like an offline utterance starting at its first
sample. Models whose vocabulary has end-of-utterance markers (``<EOU>``) also end an utterance where they
emit one: a final comes out at once, and the stream goes on without a reset, as the model was trained. `StreamState`
is the bookkeeping (numpy, under the scheduler's lock), `BufferedStep` the torch work of a step.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..streaming import StepOutput, StreamingConfig, StreamStats, StreamUpdate

if TYPE_CHECKING:
    from .decoding import Decode, ModelContext


@dataclass(frozen=True)
class StepInput:
    """One stream's share of an engine step."""

    audio: np.ndarray
    """the window: float32 mono samples, left context first"""
    skip_frames: int
    """encoder frames of left context, encoded but not decoded"""
    chunk_frames: int | None
    """encoder frames to decode after the left context; None: all of them (final step, no right context)"""
    decoder_state: Any
    """the label-looping decoder state after the previous chunk; None at the start of a segment"""


@dataclass
class StreamState:
    """Audio and decoder state of one stream; owned by the engine and only touched under its lock."""

    frame_samples: int
    left: int
    chunk: int
    right: int
    pending: list[np.ndarray] = field(default_factory=list)
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    origin: int = 0
    """absolute sample index of buffer[0]"""
    received: int = 0
    """absolute sample index of the end of the audio received"""
    segment_start: int = 0
    utterance_start: int = 0
    """where the current transcript starts: the segment's start or the last end-of-utterance token"""
    committed: int = 0
    """absolute sample index up to which the segment is decoded"""
    flushes: collections.deque[int] = field(default_factory=collections.deque)
    decoder_state: Any = None
    tokens: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    segment_frames: int = 0
    inflight_end: int | None = None
    """where the planned step ends; a flush that arrives while it runs waits for the next step"""
    inflight_final: bool = False
    served: int = 0
    """engine step counter when the stream was last served (round-robin fairness)"""
    stats: StreamStats = field(default_factory=StreamStats)

    @classmethod
    def create(cls, config: StreamingConfig, *, sample_rate: int, frame_seconds: float) -> StreamState:
        frame = round(frame_seconds * sample_rate)

        def frames(seconds: float) -> int:
            return round(seconds / frame_seconds) * frame

        return cls(frame, frames(config.left), max(frame, frames(config.chunk)), frames(config.right))

    def push(self, pcm: np.ndarray) -> None:
        if pcm.size:
            self.pending.append(pcm)
            self.received += pcm.size

    def flush(self) -> None:
        self.flushes.append(self.received)

    @property
    def flushing(self) -> bool:
        return bool(self.flushes)

    def ready(self) -> bool:
        return self.flushing or self.received - self.committed >= self.chunk + self.right

    def plan(self) -> StepInput | None:
        """The next step, or None when the next thing to do is a final over an empty segment."""
        final = self.flushes[0] if self.flushes else None
        end = final if final is not None else self.committed + self.chunk + self.right
        self.inflight_final = final is not None
        self.inflight_end = final if final is not None else self.committed + self.chunk
        if end == self.committed:
            return None
        start = max(self.segment_start, self.committed - self.left)
        if self.pending:
            self.buffer = np.concatenate([self.buffer, *self.pending])
            self.pending.clear()
        return StepInput(
            audio=self.buffer[start - self.origin : end - self.origin].copy(),
            skip_frames=(self.committed - start) // self.frame_samples,
            chunk_frames=None if final is not None else self.chunk // self.frame_samples,
            decoder_state=self.decoder_state,
        )

    def commit(
        self,
        out: StepOutput | None,
        *,
        sample_rate: int,
        detokenize: Callable[[list[int]], str],
        end_tokens: frozenset[int] = frozenset(),
    ) -> StreamUpdate | None:
        """Apply a step's result (None: a final over an empty segment); returns the update to deliver.
        `end_tokens`: the model's end-of-utterance markers (never part of the text)."""
        final, end = self.inflight_final, self.inflight_end
        assert end is not None, "commit without plan"
        self.inflight_end = None
        changed = end_of_utterance = False
        rest: tuple[list[int], list[float]] = ([], [])
        if out is not None:
            self.stats.steps += 1
            self.stats.frames_encoded += out.frames_encoded
            self.segment_frames += out.frames_encoded
            self.decoder_state = out.decoder_state
            tokens, confidences = out.tokens, out.confidences
            cut = next((k for k, t in enumerate(tokens) if t in end_tokens), None)
            # a marker ends the utterance if words came before it (after a flush, the segment ends anyway)
            if cut is not None and not final and (self.tokens or cut > 0):
                end_of_utterance = True
                # words after the marker (same step) begin the next utterance
                rest = _words(tokens[cut + 1 :], confidences[cut + 1 :], end_tokens)
                tokens, confidences = tokens[:cut], confidences[:cut]
            tokens, confidences = _words(tokens, confidences, end_tokens)
            self.tokens += tokens
            self.confidences += confidences
            changed = bool(tokens)
        if final:
            self.flushes.popleft()
        update = StreamUpdate(
            text=detokenize(self.tokens) if self.tokens else "",
            final=final or end_of_utterance,
            confidence=float(np.mean(self.confidences)) if self.confidences and self.tokens else 0.0,
            start_time=self.utterance_start / sample_rate,
            end_time=end / sample_rate,
            frames_encoded=self.segment_frames,
            end_of_utterance=end_of_utterance,
        )
        self.committed = end
        if final:
            self._start_segment(end)
        elif end_of_utterance:
            self.utterance_start = end
            self.tokens, self.confidences = rest
        self._trim()
        return update if update.final or changed else None

    def _start_segment(self, at: int) -> None:
        self.stats.segments += 1
        self.segment_start = self.utterance_start = at
        self.decoder_state = None
        self.tokens = []
        self.confidences = []
        self.segment_frames = 0

    def _trim(self) -> None:
        """Drop audio no future window reaches."""
        keep_from = max(self.segment_start, self.committed - self.left)
        drop = keep_from - self.origin
        if drop > 0:
            self.buffer = self.buffer[drop:]
            self.origin = keep_from


def _words(
    tokens: list[int], confidences: list[float], end_tokens: frozenset[int]
) -> tuple[list[int], list[float]]:
    """`tokens` and their confidences without end-of-utterance markers."""
    keep = [k for k, t in enumerate(tokens) if t not in end_tokens]
    return [tokens[k] for k in keep], [confidences[k] for k in keep if k < len(confidences)]


class BufferedStep:
    """One batched step of buffered streams: encode every stream's window in one batch, then decode each one's
    chunk frames in one batched label-looping call that carries each stream's decoder state."""

    family = "buffered"

    def __init__(self, context: ModelContext, decode: Decode) -> None:
        self.context = context
        self.decode = decode

    def __call__(self, inputs: list[StepInput]) -> list[StepOutput]:
        c = self.context
        audio, lengths = c.pad([i.audio for i in inputs])
        with c.autocast():
            encoded, encoded_len = c.model(input_signal=audio, input_signal_length=lengths)
            encoded = encoded.transpose(1, 2)  # [B, T, D]
            frames = encoded_len.tolist()
            counts = [
                (i.chunk_frames if i.chunk_frames is not None else n - i.skip_frames)
                for i, n in zip(inputs, frames, strict=True)
            ]
            chunks = [
                encoded[b, i.skip_frames : i.skip_frames + n]
                for b, (i, n) in enumerate(zip(inputs, counts, strict=True))
            ]
            return self.decode(chunks, [i.decoder_state for i in inputs], frames)
