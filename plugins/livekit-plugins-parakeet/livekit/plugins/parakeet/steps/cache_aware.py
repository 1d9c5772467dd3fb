"""Cache-aware streaming for FastConformer models trained for it (att_context_style "chunked_limited": e.g.
nvidia/parakeet_realtime_eou_120m-v1, nemotron-speech-streaming): each step encodes only NEW mel frames,
the encoder's attention and convolution history living in per-stream cache tensors (batched along dim 1 for a
step). Mel features are computed per step from the audio around the new frames (their STFT windows
complete), so they equal those of one pass over the whole segment; the chunking follows the encoder's
`streaming_cfg` (the first chunk has no feature cache, later ones `pre_encode_cache_size` frames of it).
`CacheAwareState` is a stream's bookkeeping, `CacheAwareStep` the torch work of a step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..streaming import StepOutput, StreamUpdate
from .buffered import StreamState

if TYPE_CHECKING:
    from .decoding import Decode, ModelContext


@dataclass(frozen=True)
class Chunking:
    hop: int
    """samples per mel frame"""
    half_window: int
    """samples a mel frame's STFT window reaches past its centre"""
    first: int
    """mel frames of the first chunk of a segment"""
    shift: int
    """mel frames of later chunks"""
    pre_cache: int
    """earlier mel frames fed again with each later chunk"""
    drop: int
    """encoder frames of that feature cache dropped from later chunks' output"""


@dataclass(frozen=True)
class CacheAwareInput:
    audio: np.ndarray
    """samples whose mel features contain the step's frames"""
    take_from: int
    """index of the step's first feature frame (pre-cache included) in the features of `audio`"""
    frames: int
    """feature frames fed to the encoder, pre-cache included"""
    first: bool
    encoder_cache: Any
    decoder_state: Any


@dataclass
class CacheAwareState(StreamState):
    """Per-stream state of cache-aware streaming: mel frames consumed and the encoder caches."""

    chunking: Chunking | None = None
    frames_done: int = 0
    encoder_cache: Any = None
    _n: int = 0
    """mel frames of the planned step"""

    @classmethod
    def for_chunking(cls, chunking: Chunking) -> CacheAwareState:
        return cls(frame_samples=chunking.hop, left=0, chunk=0, right=0, chunking=chunking)

    def _mel(self) -> Chunking:
        assert self.chunking is not None
        return self.chunking

    def _next(self) -> int:
        c = self._mel()
        return c.first if self.frames_done == 0 else c.shift

    def _segment_samples(self, end: int) -> int:
        return end - self.segment_start

    def ready(self) -> bool:
        return self.flushing or self._complete_frames(self.received) - self.frames_done >= self._next()

    def _complete_frames(self, end: int) -> int:
        """Mel frames whose STFT window lies within the audio received."""
        c = self._mel()
        return max(0, (self._segment_samples(end) - c.half_window) // c.hop + 1)

    def plan(self) -> CacheAwareInput | None:  # type: ignore[override]
        c = self._mel()
        flush = self.flushes[0] if self.flushes else None
        n = self._next()
        final = False
        if flush is not None:
            remaining = self._segment_samples(flush) // c.hop + 1 - self.frames_done
            final = remaining <= n
            n = max(0, remaining) if final else n
        self.inflight_final = final
        self.inflight_end = flush if final else self.segment_start + (self.frames_done + n) * c.hop
        if n == 0:
            return None
        if self.pending:
            self.buffer = np.concatenate([self.buffer, *self.pending])
            self.pending.clear()
        pre = 0 if self.frames_done == 0 else c.pre_cache
        first_frame = self.frames_done - pre
        # two frames of audio before: the mel front end's pre-emphasis and STFT reach back past a cut
        start = max(0, first_frame - 2) * c.hop
        end = (
            self._segment_samples(flush)
            if final and flush is not None
            else (self.frames_done + n - 1) * c.hop + c.half_window
        )
        origin = self.origin - self.segment_start
        self._n = n
        return CacheAwareInput(
            audio=self.buffer[start - origin : end - origin].copy(),
            take_from=first_frame - start // c.hop,
            frames=pre + n,
            first=self.frames_done == 0,
            encoder_cache=self.encoder_cache,
            decoder_state=self.decoder_state,
        )

    def commit(self, out: StepOutput | None, **kwargs: Any) -> StreamUpdate | None:  # type: ignore[override]
        if out is not None:
            self.encoder_cache = out.encoder_cache
            self.frames_done += self._n
        return super().commit(out, **kwargs)

    def _start_segment(self, at: int) -> None:
        super()._start_segment(at)
        self.frames_done = 0
        self.encoder_cache = None

    def _trim(self) -> None:
        c = self._mel()
        keep = self.segment_start + max(0, self.frames_done - c.pre_cache - 2) * c.hop
        drop = keep - self.origin
        if drop > 0:
            self.buffer = self.buffer[drop:]
            self.origin = keep


def is_cache_aware(model: Any) -> bool:
    return getattr(model.encoder, "att_context_style", "regular") == "chunked_limited"


def chunking_of(model: Any) -> Chunking:
    """The chunking of the encoder's current `att_context_size` (see `set_default_att_context_size`)."""
    model.encoder.setup_streaming_params()
    cfg = model.encoder.streaming_cfg
    featurizer = model.preprocessor.featurizer
    shift, pre_cache = int(cfg.shift_size[1]), int(cfg.pre_encode_cache_size[1])
    # NeMo zero-fills a feature cache longer than the history (e.g. [70, 0]: a 1-frame first chunk, then a
    # 9-frame cache), which differs from offline encoding; a first chunk grown by whole shifts to cover the
    # cache keeps streaming exact, for one chunk more of latency at the start of a segment
    first = int(cfg.chunk_size[0])
    while first < pre_cache:
        first += shift
    return Chunking(
        hop=int(featurizer.hop_length),
        half_window=int(featurizer.n_fft) // 2,
        first=first,
        shift=shift,
        pre_cache=pre_cache,
        drop=int(cfg.drop_extra_pre_encoded),
    )


class CacheAwareStep:
    """One batched step of cache-aware streams: mel features of each stream's new frames, one encoder call per
    kind of chunk (a segment's first, without feature cache, or a later one) over the streams' batched caches,
    then one batched decoder call for all."""

    family = "cache-aware"

    def __init__(self, context: ModelContext, decode: Decode, chunking: Chunking) -> None:
        self.context = context
        self.decode = decode
        self.chunking = chunking

    def __call__(self, inputs: list[CacheAwareInput]) -> list[StepOutput]:
        c = self.context
        encoder = c.model.encoder
        audio, lengths = c.pad([i.audio for i in inputs])
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        caches: list[Any] = [None] * len(inputs)
        with c.autocast():
            features, _ = c.model.preprocessor(input_signal=audio, length=lengths)
            groups: dict[bool, list[int]] = {}
            for b, i in enumerate(inputs):
                groups.setdefault(i.first, []).append(b)
            for first, members in groups.items():
                batch = features.new_zeros(
                    len(members), features.shape[1], max(inputs[b].frames for b in members)
                )
                for j, b in enumerate(members):
                    i = inputs[b]
                    batch[j, :, : i.frames] = features[b, :, i.take_from : i.take_from + i.frames]
                initial = [
                    inputs[b].encoder_cache or encoder.get_initial_cache_state(batch_size=1) for b in members
                ]
                encoded, encoded_len, channel, time_, channel_len = encoder.cache_aware_stream_step(
                    processed_signal=batch,
                    processed_signal_length=torch.tensor(
                        [inputs[b].frames for b in members], device=c.device
                    ),
                    cache_last_channel=torch.cat([x[0] for x in initial], dim=1),
                    cache_last_time=torch.cat([x[1] for x in initial], dim=1),
                    cache_last_channel_len=torch.cat([x[2] for x in initial], dim=0),
                    # chunked attention has no look-ahead past a chunk: every output frame is final
                    keep_all_outputs=True,
                    drop_extra_pre_encoded=0 if first else self.chunking.drop,
                )
                for j, b in enumerate(members):
                    outputs[b] = encoded[j, :, : int(encoded_len[j])].T
                    caches[b] = (
                        channel[:, j : j + 1].clone(),
                        time_[:, j : j + 1].clone(),
                        channel_len[j : j + 1].clone(),
                    )
            chunks = [o for o in outputs if o is not None]
            results = self.decode(chunks, [i.decoder_state for i in inputs], [len(x) for x in chunks])
        return [dataclasses.replace(r, encoder_cache=x) for r, x in zip(results, caches, strict=True)]
