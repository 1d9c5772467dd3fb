"""The livekit TTS front end: synthesize(), streaming, interruption, errors, prewarm."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from chatterbox_helpers import expected_seconds, fail_vocoder_once, frame_energies
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, tts
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox.steps import decoding

NO_RETRY = APIConnectOptions(max_retry=0)


def record_texts(engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    texts: list[str] = []
    synthesize = engine.synthesize

    def recording(text: str, **kwargs: Any) -> chatterbox.SynthesisHandle:
        texts.append(text)
        return synthesize(text, **kwargs)

    monkeypatch.setattr(engine, "synthesize", recording)
    return texts


def pcm_of(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([np.frombuffer(frame.data, dtype=np.int16) for frame in frames])


async def test_synthesize_gives_24khz_frames_with_energy(engine: chatterbox.ChatterboxEngine) -> None:
    plugin_tts = chatterbox.TTS(engine=engine)
    assert (plugin_tts.model, plugin_tts.provider, plugin_tts.sample_rate) == (
        "synthetic-tiny",
        "Chatterbox",
        24000,
    )
    durations = []
    for text in ("Hi there.", "Hi there, this is a longer reply."):
        frames = [event.frame async for event in plugin_tts.synthesize(text)]
        assert {(frame.sample_rate, frame.num_channels) for frame in frames} == {(24000, 1)}
        pcm = pcm_of(frames)
        assert np.median(frame_energies(pcm)) > 200
        durations.append(len(pcm) / 24000)
        assert durations[-1] == pytest.approx(expected_seconds(text), abs=0.05)  # + end-of-segment markers
    assert durations[1] > 2.5 * durations[0]


async def test_stream_speaks_an_early_clause_then_sentences(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = record_texts(engine, monkeypatch)
    plugin_tts = chatterbox.TTS(engine=engine)
    metrics: list[Any] = []
    plugin_tts.on("metrics_collected", metrics.append)

    stream = plugin_tts.stream()
    for word in ["Well,", "I", "think", "the", "answer,", "in", "short,", "is", "yes.", "Thanks!"]:
        stream.push_text(word + " ")
        await asyncio.sleep(0.01)
    stream.flush()
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()

    assert texts == ["Well, I think the answer,", "in short, is yes.", "Thanks!"]
    pcm = pcm_of([event.frame for event in events])
    assert len(pcm) / 24000 == pytest.approx(sum(expected_seconds(t) for t in texts), abs=0.05)
    assert len({event.segment_id for event in events}) == 1
    assert events[-1].is_final
    assert metrics and metrics[0].ttfb > 0  # _mark_started() was called


async def test_aclose_mid_reply_stops_engine_work_and_audio(engine: chatterbox.ChatterboxEngine) -> None:
    plugin_tts = chatterbox.TTS(engine=engine, first_fragment_min_words=0)
    before = engine.stats
    stream = plugin_tts.stream()
    stream.push_text("First sentence here. Second sentence is longer. Third one. Fourth one.")
    stream.end_input()
    await stream.__anext__()  # the first audio
    await stream.aclose()
    at_close = engine.stats
    assert [event async for event in stream] == []

    # the worker drops cancelled work before each step: once a later request is done, the reply's remaining
    # sentences have been dealt with
    assert len(b"".join([c async for c in engine.synthesize("Done.")])) > 0
    after = engine.stats
    assert after.submitted - before.submitted == 5  # four sentences and "Done."
    assert after.started - at_close.started <= 1  # "Done." only
    assert after.dropped - before.dropped >= 2
    assert after.completed - before.completed <= 3  # at most sentences 1 and 2, and "Done."


async def test_engine_failure_is_an_api_error_and_the_next_reply_works(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_vocoder_once(engine, monkeypatch)
    plugin_tts = chatterbox.TTS(engine=engine)
    errors: list[tts.TTSError] = []
    plugin_tts.on("error", errors.append)

    with pytest.raises(APIError, match="vocoder exploded"):
        async for _ in plugin_tts.synthesize("This reply fails.", conn_options=NO_RETRY):
            pass
    assert errors and errors[0].error.retryable  # nothing was spoken yet: a retry may work
    frames = [event.frame async for event in plugin_tts.synthesize("This one works.", conn_options=NO_RETRY)]
    assert len(pcm_of(frames)) > 0


async def test_model_load_failure_is_a_non_retryable_api_error() -> None:
    plugin_tts = chatterbox.TTS(model="./no/such/checkpoint", device="cpu")
    with pytest.raises(APIError, match="does not exist") as info:
        async for _ in plugin_tts.synthesize("Hello.", conn_options=NO_RETRY):
            pass
    assert not info.value.retryable


async def test_prewarm_loads_the_shared_engine(engine: chatterbox.ChatterboxEngine) -> None:
    plugin_tts = chatterbox.TTS(model="synthetic-tiny", device="cpu")
    plugin_tts.prewarm()
    submitted = engine.stats.submitted
    frames = [event.frame async for event in plugin_tts.synthesize("Prewarmed.")]
    assert len(pcm_of(frames)) > 0
    assert engine.stats.submitted == submitted + 1


async def test_text_is_normalized_for_speech_unless_disabled(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = record_texts(engine, monkeypatch)
    async for _ in chatterbox.TTS(engine=engine).synthesize("Only $5 🙂"):
        pass
    async for _ in chatterbox.TTS(engine=engine, normalize_text=False).synthesize("Only 5%"):
        pass
    assert texts == ["Only five dollars", "Only 5%"]


async def test_a_reply_with_nothing_to_say_is_a_moment_of_silence(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = record_texts(engine, monkeypatch)
    frames = [
        event.frame async for event in chatterbox.TTS(engine=engine).synthesize("👍", conn_options=NO_RETRY)
    ]
    assert texts == []
    pcm = pcm_of(frames)
    assert 0 < len(pcm) <= 24000 // 50 + 2400 and not pcm.any()  # silence (+ end-of-segment padding)


async def test_first_frame_is_pushed_before_the_sentence_is_synthesized(
    engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    t3_done: list[float] = []
    sample = decoding.Utterance.sample

    def timed(utterance: decoding.Utterance) -> int | None:
        token = sample(utterance)
        if token is None:
            t3_done.append(time.monotonic())
        return token

    monkeypatch.setattr(decoding.Utterance, "sample", timed)
    stream = chatterbox.TTS(engine=engine, chunk_tokens=(20,)).stream()
    stream.push_text("This single sentence is long enough for four chunks.")
    stream.end_input()
    frame_times = [time.monotonic() async for _ in stream]
    await stream.aclose()

    assert len(t3_done) == 1
    # the sentence's T3 ends a few chunk steps (seconds of CPU) after its first chunk was pushed
    assert frame_times[0] < t3_done[0]
