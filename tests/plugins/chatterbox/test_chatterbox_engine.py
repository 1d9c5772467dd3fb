"""ChatterboxEngine: audio, cancellation, voice caching, failures, and the event loop staying free."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chatterbox_helpers import expected_seconds, fail_vocoder_once, frame_energies
from livekit.plugins import chatterbox

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
