"""ChatterboxEngine: audio, cancellation, voice caching, failures, and the event loop staying free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from chatterbox_helpers import expected_seconds, fail_vocoder_once, frame_energies
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox import scheduler, testing
from livekit.plugins.chatterbox.steps import FlowInput
from torch import Tensor

from tests.loop_probe import LoopLagProbe


async def collect(handle: chatterbox.SynthesisHandle) -> np.ndarray:
    return np.frombuffer(b"".join([chunk async for chunk in handle]), dtype=np.int16)


async def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_audio_length_follows_text_length(engine: chatterbox.ChatterboxEngine) -> None:
    short, long = "Hello there.", "Hello there, how are you doing today?"
    short_pcm = await collect(engine.synthesize(short))
    long_pcm = await collect(engine.synthesize(long))

    assert len(short_pcm) / 24000 == pytest.approx(expected_seconds(short))
    assert len(long_pcm) / 24000 == pytest.approx(expected_seconds(long))
    assert len(long_pcm) > 2 * len(short_pcm)
    # S3Gen fades the first 40 ms in; after that random weights give steady noise
    assert frame_energies(long_pcm)[2:].min() > 200


async def test_event_loop_stays_free_during_synthesis(engine: chatterbox.ChatterboxEngine) -> None:
    async with LoopLagProbe() as probe:
        start = time.perf_counter()
        pcm = await collect(engine.synthesize("The loop keeps ticking while this is spoken."))
        took = time.perf_counter() - start

    assert len(pcm) > 0
    assert took > 1.0  # long enough that running it on the loop would show
    assert probe.max_gap < 0.5


async def test_cancel_stops_running_work_and_drops_queued_requests(
    engine: chatterbox.ChatterboxEngine,
) -> None:
    before = engine.stats
    # one stream: the later sentences wait for the first
    running = engine.synthesize("This sentence is cancelled while it is being synthesized.", stream="reply")
    queued = [
        engine.synthesize("Never started.", stream="reply"),
        engine.synthesize("Never started either.", stream="reply"),
    ]
    await wait_until(lambda: engine.stats.started > before.started)
    for handle in (running, *queued):
        handle.cancel()
    for handle in (running, *queued):
        assert len(await collect(handle)) == 0
    await asyncio.gather(*(handle.stopped() for handle in (running, *queued)))
    assert engine.stats.cancelled - before.cancelled == 1

    # the worker drops cancelled work before each step: once a later request is done, it has been dropped
    assert len(await collect(engine.synthesize("Done."))) > 0
    after = engine.stats
    assert after.started - before.started == 2
    assert after.cancelled - before.cancelled == 1
    assert after.dropped - before.dropped == 2
    assert after.completed - before.completed == 1


async def test_reference_voice_is_prepared_once(
    engine: chatterbox.ChatterboxEngine, reference_wav: Path
) -> None:
    before = engine.stats.voices_prepared
    first = await collect(engine.synthesize("First clone.", voice=str(reference_wav)))
    second = await collect(engine.synthesize("Second clone.", voice=str(reference_wav)))
    assert len(first) > 0 and len(second) > 0
    assert engine.stats.voices_prepared - before == 1

    with pytest.raises(chatterbox.SynthesisError):
        await collect(engine.synthesize("No such voice.", voice=str(reference_wav.with_name("missing.wav"))))


async def test_failure_is_reported_and_the_engine_keeps_serving(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_vocoder_once(engine, monkeypatch)
    failed_before = engine.stats.failed
    with pytest.raises(chatterbox.SynthesisError, match="vocoder exploded"):
        await collect(engine.synthesize("This one fails."))
    assert engine.stats.failed - failed_before == 1
    assert len(await collect(engine.synthesize("This one works."))) > 0


async def test_a_failure_fails_only_its_own_stream(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_vocoder_once(engine, monkeypatch)
    texts = ["One of us fails.", "One of us fails too."]
    results = await asyncio.gather(*(collect(engine.synthesize(t)) for t in texts), return_exceptions=True)
    failed = [r for r in results if isinstance(r, chatterbox.SynthesisError)]
    spoken = [(t, r) for t, r in zip(texts, results, strict=True) if isinstance(r, np.ndarray)]
    assert len(failed) == 1 and "vocoder exploded" in str(failed[0])
    [(text, pcm)] = spoken
    assert len(pcm) / 24000 == pytest.approx(expected_seconds(text))


async def test_streams_running_together_are_batched_and_sound_as_they_do_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # synthetic-tiny's speech head has zero weights: its tokens ignore what T3 computes. This test's own copy
    # gets random ones, so that a batching mistake (padding, positions, other streams' caches) changes tokens.
    # Chunks are cut where they are cut alone (no early joining of flow calls), so the audio must be equal too.
    monkeypatch.setattr(scheduler, "FLOW_JOIN_FILL", 1.0)
    model = await asyncio.to_thread(testing.load_model, "synthetic-tiny", "cpu")
    with torch.no_grad():
        model.tts.t3.speech_head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    engine = chatterbox.ChatterboxEngine(model)
    texts = ["A first reply, longer than the others.", "Second one.", "A third, in between."]

    def synthesize(i: int, seed: int) -> chatterbox.SynthesisHandle:
        return engine.synthesize(texts[i], seed=seed, watermark=False, chunk_tokens=(40,))

    try:
        alone = [await collect(synthesize(i, i)) for i in range(3)]
        assert (engine.stats.max_batch, engine.stats.max_flow_batch) == (1, 1)
        together = await asyncio.gather(*(collect(synthesize(i, i)) for i in range(3)))
        stats = engine.stats
        # the seed is what makes them equal: another seed, other tokens, other audio
        other = await collect(synthesize(1, 7))
    finally:
        await asyncio.to_thread(engine.close)

    assert stats.max_batch == 3
    assert stats.decode_steps < stats.tokens
    # what the metrics read: rows per forward pass (a mean batch above 1) and their time
    assert stats.decode_steps < stats.decoded_rows <= 3 * stats.decode_steps
    assert stats.decode_seconds > 0 and 1 <= stats.last_batch <= 3 and stats.last_step_seconds > 0
    for text, pcm, pcm_alone in zip(texts, together, alone, strict=True):
        assert len(pcm) / 24000 == pytest.approx(expected_seconds(text))
        assert np.allclose(pcm, pcm_alone, atol=2)
    assert not np.allclose(other, together[1], atol=2)


class FlowSpy(chatterbox.SynthesisSteps):
    """Records the number of rows of each flow call."""

    def __init__(self, model: chatterbox.LoadedModel) -> None:
        super().__init__(model)
        self.rows_per_call: list[int] = []

    def flow(self, rows: Sequence[FlowInput]) -> list[Tensor]:
        self.rows_per_call.append(len(rows))
        return super().flow(rows)


async def test_nearly_full_chunks_join_a_flow_call(engine: chatterbox.ChatterboxEngine) -> None:
    """Streams a few token steps apart never have chunks due at the same step; the nearly full ones join."""
    spy = FlowSpy(engine.model)
    rows_per_call = spy.rows_per_call
    texts = ["A first reply, longer than the others.", "Second one.", "A third, in between."]
    # an engine of its own: three streams at once would raise the shared engine's max_batch, which
    # `bench tts` (sharing it in one test process) reports
    engine = chatterbox.ChatterboxEngine(engine.model, steps=spy)
    try:
        handles = []
        for text in texts:
            tokens = engine.stats.tokens
            handles.append(engine.synthesize(text, chunk_tokens=(20, 40)))
            await wait_until(lambda t=tokens: engine.stats.tokens > t)  # the next starts a token step later
        replies = await asyncio.gather(*map(collect, handles))
    finally:
        await asyncio.to_thread(engine.close)
    assert max(rows_per_call) >= 2, rows_per_call
    for text, pcm in zip(texts, replies, strict=True):
        assert len(pcm) / 24000 == pytest.approx(expected_seconds(text))


async def test_closed_engine_refuses_requests(engine: chatterbox.ChatterboxEngine) -> None:
    other = chatterbox.ChatterboxEngine(engine.model)
    other.close()
    assert other.closed
    with pytest.raises(chatterbox.SynthesisError, match="closed"):
        other.synthesize("Too late.")


async def test_watermark_is_a_per_request_switch(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    watermarker = engine.model.tts.watermarker
    calls: list[int] = []
    original = watermarker.apply_watermark

    def counting(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        calls.append(len(audio))
        return original(audio, sample_rate=sample_rate)

    monkeypatch.setattr(watermarker, "apply_watermark", counting)
    await collect(engine.synthesize("Marked.", watermark=True))
    assert len(calls) == 1
    await collect(engine.synthesize("Not marked.", watermark=False))
    assert len(calls) == 1
