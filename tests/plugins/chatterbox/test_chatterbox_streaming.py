"""Chunked synthesis: early first audio, seamless chunks, cancel within a chunk, streams taking turns."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from chatterbox_helpers import assert_batched_flow_matches_alone, expected_seconds, frame_energies
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox.steps import ChunkVocoder, DecodeBatch, FlowInput, decoding, vocoder
from torch import Tensor

T = TypeVar("T")
LONG = "A long paragraph keeps the engine busy for a while, so a cancel happens in the middle of it."


class EventLog:
    """What the worker thread did, in order: "token", "stop" (T3 finished) and "audio <request>" events."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        real = decoding.Utterance.sample

        def logged(utterance: decoding.Utterance) -> int | None:
            token = real(utterance)
            self.events.append("token" if token is not None else "stop")
            return token

        monkeypatch.setattr(decoding.Utterance, "sample", logged)

    def watch(self, handle: chatterbox.SynthesisHandle, name: str) -> chatterbox.SynthesisHandle:
        deliver = handle.deliver

        def logged(item: Any) -> None:
            self.events.append(f"audio {name}" if isinstance(item, bytes) else f"end {name}")
            deliver(item)

        handle.deliver = logged  # type: ignore[method-assign]
        return handle


async def chunks_of(handle: chatterbox.SynthesisHandle) -> list[np.ndarray]:
    return [np.frombuffer(chunk, dtype=np.int16) async for chunk in handle]


async def wait_until(condition: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_first_chunk_is_vocoded_before_t3_finishes(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(monkeypatch)
    text = "Hello there, this sentence is spoken in chunks."
    chunks = await chunks_of(log.watch(engine.synthesize(text, chunk_tokens=(10, 20)), "a"))

    first_audio, stop = log.events.index("audio a"), log.events.index("stop")
    assert first_audio < stop
    assert log.events[:first_audio].count("token") == 10
    assert len(chunks) >= 3
    # the chunks add up to exactly the one-shot length: 960 samples per token
    assert sum(len(chunk) for chunk in chunks) / 24000 == pytest.approx(expected_seconds(text))


async def test_chunk_seams_have_no_gaps_or_clicks(engine: chatterbox.ChatterboxEngine) -> None:
    chunks = await chunks_of(engine.synthesize(LONG, chunk_tokens=(12, 24)))
    pcm = np.concatenate(chunks).astype(np.float32)
    seams = np.cumsum([len(chunk) for chunk in chunks])[:-1]
    assert len(seams) >= 5

    # no sample-to-sample jump at a seam beyond what the (noise) audio does anyway
    jumps = np.abs(np.diff(pcm))
    assert max(jumps[seam - 1] for seam in seams) <= 1.5 * np.percentile(jumps, 99.9)
    # no dip (gap, fade to silence) or burst around a seam: 20 ms windows centred on seams vs the rest
    level = np.median(frame_energies(pcm.astype(np.int16)))
    for seam in seams:
        around = np.abs(pcm[seam - 240 : seam + 240]).mean()
        assert 0.5 * level < around < 2.0 * level, (seam, around, level)


def test_crossfade_of_a_signal_with_itself_is_the_signal() -> None:
    """Equal-gain weights: a continuous signal stays continuous (hamming windows would bulge it by 8%)."""
    t = torch.arange(vocoder.TAIL) / 24000
    sine = torch.sin(2 * math.pi * 220 * t)
    assert torch.allclose(vocoder.crossfade(sine, sine), sine, atol=1e-6)
    faded = vocoder.crossfade(torch.ones(vocoder.TAIL), torch.zeros(vocoder.TAIL))
    assert faded[0] > 0.99 and faded[-1] < 0.01 and bool((faded.diff() <= 0).all())


async def test_cancel_stops_generation_within_one_chunk(engine: chatterbox.ChatterboxEngine) -> None:
    before = engine.stats
    handle = engine.synthesize(LONG, chunk_tokens=(10, 15))
    first = await handle.__anext__()
    cancelled_at = time.monotonic()
    handle.cancel()
    at_cancel = engine.stats
    assert [chunk async for chunk in handle] == []  # no audio after cancel

    assert await handle.stopped() >= cancelled_at
    after = engine.stats
    assert after.cancelled - before.cancelled == 1
    assert len(first) > 0
    assert after.tokens - at_cancel.tokens <= 15  # at most the rest of the chunk in progress
    assert after.chunks - at_cancel.chunks <= 1  # at most the chunk being vocoded
    budget = round(1.5 * len(LONG))
    assert after.tokens - before.tokens < budget / 2  # far from the whole paragraph


Work = tuple[str, str, float]
"""(request text, the piece of work it was part of: "prompt", "token" step or "chunk", when the step began)"""


class TimedSteps(chatterbox.SynthesisSteps):
    """Records each step of model work. The worker runs one at a time: a step's bookkeeping is over when the
    next one begins."""

    def __init__(self, model: chatterbox.LoadedModel) -> None:
        super().__init__(model)
        self.work: list[Work] = []
        self._texts: dict[int, str] = {}  # id of a decoder, vocoder or flow row -> its request's text

    def _timed(self, owners: Sequence[object], piece: str, run: Callable[[], T]) -> T:
        self.work.extend((self._texts[id(owner)], piece, time.monotonic()) for owner in owners)
        return run()

    def prepare(self, text: str, **kwargs: Any) -> tuple[decoding.Utterance, ChunkVocoder]:
        self.work.append((text, "prompt", time.monotonic()))
        decoder, vocoder = super().prepare(text, **kwargs)
        self._texts[id(decoder)] = self._texts[id(vocoder)] = text
        return decoder, vocoder

    def sample(self, decoder: decoding.Utterance) -> int | None:
        return self._timed([decoder], "token", lambda: super(TimedSteps, self).sample(decoder))

    def decode(self, batch: DecodeBatch) -> None:
        self._timed(batch.members, "token", lambda: super(TimedSteps, self).decode(batch))

    def flow_input(self, vocoder: ChunkVocoder, tokens: Sequence[int], *, final: bool) -> FlowInput | None:
        row = self._timed(
            [vocoder], "chunk", lambda: super(TimedSteps, self).flow_input(vocoder, tokens, final=final)
        )
        if row is not None:
            self._texts[id(row)] = self._texts[id(vocoder)]
        return row

    def flow(self, rows: Sequence[FlowInput]) -> list[Tensor]:
        return self._timed(rows, "chunk", lambda: super(TimedSteps, self).flow(rows))

    def audio(self, vocoder: ChunkVocoder, mels: Tensor | None, *, final: bool, watermark: bool) -> bytes:
        return self._timed(
            [vocoder],
            "chunk",
            lambda: super(TimedSteps, self).audio(vocoder, mels, final=final, watermark=watermark),
        )


async def test_a_cancelled_stream_stops_while_another_goes_on(engine: chatterbox.ChatterboxEngine) -> None:
    """stopped() is when the cancelled request's last work ended: the step or chunk of it in flight at
    cancel(), or cancel() itself when the worker was busy with another stream; none of it runs after."""
    steps = TimedSteps(engine.model)
    work = steps.work
    engine = chatterbox.ChatterboxEngine(engine.model, steps=steps)
    try:
        await cancel_one_of_two(engine, work)
    finally:
        await asyncio.to_thread(engine.close)


async def cancel_one_of_two(engine: chatterbox.ChatterboxEngine, work: list[Work]) -> None:
    other = engine.synthesize(LONG, chunk_tokens=(10, 20))
    await other.__anext__()
    text = "The cancelled reply would go on and on, if nobody stopped it."
    victim = engine.synthesize(text, chunk_tokens=(10, 20))
    await victim.__anext__()
    victim.cancel()
    assert [chunk async for chunk in victim] == []
    stopped = await victim.stopped()
    assert len(await chunks_of(other)) > 0  # the other stream went on to its end

    # no step of it begins after cancel() but the rest of the token step or chunk in flight then
    pieces = [piece for request, piece, start in work if request == text and start >= victim.cancelled_at]
    assert len(set(pieces)) <= 1 and len(pieces) <= 3, pieces
    # and the worker had let go of it by the first step (of the other stream) after its last
    last = max(start for request, _, start in work if request == text)
    assert victim.cancelled_at <= stopped <= max(victim.cancelled_at, min(s for _, _, s in work if s > last))


async def test_a_second_stream_does_not_wait_for_the_first(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(monkeypatch)
    long = log.watch(engine.synthesize(LONG, chunk_tokens=(10, 20)), "long")
    long_chunks: list[np.ndarray] = [np.frombuffer(await long.__anext__(), dtype=np.int16)]
    short = log.watch(engine.synthesize("A quick reply.", chunk_tokens=(10, 20)), "short")

    short_chunks, rest = await asyncio.gather(chunks_of(short), chunks_of(long))
    long_chunks += rest
    assert log.events.index("end short") < log.events.index("end long")
    # the long paragraph kept going while the short reply was spoken: they took turns
    audio = [event for event in log.events if event.startswith("audio")]
    first_short = audio.index("audio short")
    assert audio[:first_short].count("audio long") <= 2  # the one awaited, the one being vocoded
    assert "audio long" in audio[first_short:]
    assert sum(map(len, short_chunks)) / 24000 == pytest.approx(expected_seconds("A quick reply."))
    assert sum(map(len, long_chunks)) / 24000 == pytest.approx(expected_seconds(LONG))


async def test_requests_of_one_stream_run_in_order(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(monkeypatch)
    first = log.watch(engine.synthesize("First sentence, in chunks.", chunk_tokens=(10,), stream="s"), "1")
    second = log.watch(engine.synthesize("Second one.", chunk_tokens=(10,), stream="s"), "2")
    await asyncio.gather(chunks_of(first), chunks_of(second))
    assert log.events.index("end 1") < log.events.index("audio 2")


def test_batched_flow_gives_each_row_what_it_gets_alone(engine: chatterbox.ChatterboxEngine) -> None:
    assert_batched_flow_matches_alone(engine, meanflow=False)


def test_final_flow_matches_chatterbox(engine: chatterbox.ChatterboxEngine) -> None:
    """One final push runs the same flow maths as CausalMaskedDiffWithXvec.inference(finalize=True)."""
    s3gen, ref = engine.model.tts.s3gen, engine.model.tts.conds.gen
    generator = torch.Generator().manual_seed(6)
    tokens = torch.randint(0, 6561, (30,), generator=generator)
    noise = torch.randn(1, 80, 60, generator=generator)
    chunked = vocoder.ChunkVocoder(s3gen, ref, n_timesteps=2, meanflow=False)
    n_prompt = ref["prompt_feat"].shape[1]
    torch.manual_seed(7)
    upstream_noise = torch.randn(1, 80, n_prompt + 60)  # upstream draws the prompt frames' noise itself
    # the noise upstream gets too
    chunked._tokens, chunked._noise = tokens, noise
    chunked._prompt_noise = upstream_noise[:, :, :n_prompt]
    with torch.inference_mode():
        row = chunked.flow_input([], final=True)
        assert row is not None
        (ours,) = vocoder.run_flow(s3gen, [row], n_timesteps=2, meanflow=False)
        torch.manual_seed(7)
        theirs, _ = s3gen.flow.inference(
            token=tokens.unsqueeze(0),
            token_len=torch.tensor([30]),
            finalize=True,
            noised_mels=noise,
            n_timesteps=2,
            meanflow=False,
            **ref,
        )
    assert ours.shape == (1, 80, 60)
    assert torch.allclose(ours, theirs, atol=1e-4)
