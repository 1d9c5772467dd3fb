"""Buffered streaming (steps/buffered.py): streamed transcripts equal offline ones for any windows, a final is
one step over the rest of the audio, and segments are independent."""

from __future__ import annotations

import numpy as np
import pytest
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing as sa
from parakeet_helpers import (
    RATE,
    full_steps,
    open_stream,
    push,
    utterance,
    wait_steps,
    words,
)


@pytest.mark.parametrize(
    "config",
    [
        parakeet.StreamingConfig(),
        parakeet.StreamingConfig(left=0.8, chunk=0.16, right=0.16),
        parakeet.StreamingConfig(left=2.0, chunk=0.64, right=0.0),
    ],
    ids=["default", "small", "no-right-context"],
)
async def test_streaming_equals_offline(
    tiny_engine: parakeet.ParakeetEngine, config: parakeet.StreamingConfig
) -> None:
    for seed, seconds in [(1, 1.3), (2, 2.9)]:
        audio = utterance(seconds, seed)
        offline = (await tiny_engine.transcribe(audio)).text
        stream, listener = open_stream(tiny_engine, config)
        push(stream, audio)
        steps = full_steps(len(audio), config)
        await wait_steps(stream, steps)
        stream.flush()
        await listener.wait_final()
        stream.close()

        assert words(offline) and set(words(offline)) == {sa.SYNTHETIC_WORD}
        final = listener.finals[0]
        assert final.text == offline
        assert final.end_time == pytest.approx(len(audio) / RATE)
        assert 0.0 < final.confidence <= 1.0
        interims = [u.text for u in listener.updates if not u.final]
        assert interims, "interim transcripts while audio streams in"
        assert all(offline.startswith(text) for text in interims)
        assert stream.stats.steps == steps + 1  # the final is ONE more step


async def test_final_is_one_step_over_the_rest_not_the_utterance(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    config = parakeet.StreamingConfig(left=0.8, chunk=0.32, right=0.16)
    window_frames = round((config.left + config.chunk + config.right) / tiny_engine.frame_seconds) + 1
    audio = utterance(8.0, seed=5)
    stream, listener = open_stream(tiny_engine, config)
    push(stream, audio)
    steps = full_steps(len(audio), config)
    await wait_steps(stream, steps)
    before = stream.stats.frames_encoded
    stream.flush()
    await listener.wait_final()
    stream.close()

    assert stream.stats.frames_encoded - before <= window_frames  # the flush step re-encodes one window
    total = listener.finals[0].frames_encoded
    utterance_frames = len(audio) / RATE / tiny_engine.frame_seconds
    # linear in the utterance: (left + chunk + right) / chunk frames per frame of audio at most
    assert total <= (steps + 1) * window_frames
    assert (
        total <= utterance_frames * window_frames / (config.chunk / tiny_engine.frame_seconds) + window_frames
    )


async def test_segments_are_independent_and_silence_says_nothing(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    first, second = utterance(1.2, seed=3), utterance(2.0, seed=4)
    stream, listener = open_stream(tiny_engine)
    push(stream, first)
    stream.flush()
    push(stream, np.zeros(2 * RATE, np.float32))
    stream.flush()
    stream.flush()  # nothing since the last flush: an empty final, no step
    push(stream, second)
    stream.flush()
    await listener.wait_final(4)
    stream.close()

    texts = [u.text for u in listener.finals]
    assert texts == [
        (await tiny_engine.transcribe(first)).text,
        "",
        "",
        (await tiny_engine.transcribe(second)).text,
    ]
    assert [u.confidence for u in listener.finals][1:3] == [0.0, 0.0]
    assert listener.finals[3].start_time == pytest.approx((len(first) + 2 * RATE) / RATE)
    assert stream.stats.segments == 4
