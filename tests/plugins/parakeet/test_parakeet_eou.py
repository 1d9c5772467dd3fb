"""End-of-utterance tokens: a model that emits `<EOU>` (synthetic-tiny-eou: a cache-aware tiny model wired to
say it in silence) gets a final at that point, without a flush, and the marker never reaches the text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from livekit.agents import stt
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing as sa
from livekit.plugins.parakeet.models import END_OF_UTTERANCE_TOKENS
from livekit.plugins.parakeet.steps import StreamState
from livekit.plugins.parakeet.steps.decoding import end_of_utterance_ids
from livekit.plugins.parakeet.streaming import StepOutput, StreamingConfig
from parakeet_helpers import open_stream, private_engine, push, split_frames, to_frame, words

EOU = "<EOU>"


@pytest.fixture(scope="module")
def eou_engine(synthetic_cache: Path) -> Iterator[parakeet.ParakeetEngine]:
    engine = private_engine("synthetic-tiny-eou", att_context_size=(70, 1))
    yield engine
    engine.close()


def utterance(seconds: float, seed: int) -> np.ndarray:
    return sa.pad(sa.speech_like(seconds, seed=seed), before=0.4, after=1.0)


async def test_the_models_end_of_utterance_token_ends_the_utterance_without_a_flush(
    eou_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    end_ids = end_of_utterance_ids(eou_engine.tokenizer)
    assert end_ids == {eou_engine.tokenizer.token_to_id(t) for t in END_OF_UTTERANCE_TOKENS}
    decoded: list[int] = []
    step = eou_engine.steps.stream

    def spy(inputs: list[object]) -> list[StepOutput]:
        outputs = step(inputs)
        decoded.extend(t for o in outputs for t in o.tokens)
        return outputs

    monkeypatch.setattr(eou_engine.steps, "stream", spy)
    first, second = utterance(1.5, seed=70), utterance(1.1, seed=71)
    offline = [(await eou_engine.transcribe(clip)).text for clip in (first, second)]
    stream, listener = open_stream(eou_engine)
    push(stream, first)
    await listener.wait_final()
    push(stream, second)
    await listener.wait_final(2)
    stream.flush()
    await listener.wait_final(3)
    stream.close()

    assert end_ids & set(decoded), "the model emitted the token: the engine saw it"
    eou_finals, flush_final = listener.finals[:2], listener.finals[2]
    assert [u.text for u in eou_finals] == offline
    assert all(words(text) and set(words(text)) == {sa.SYNTHETIC_WORD} for text in offline)
    assert all(u.end_of_utterance for u in eou_finals)
    assert not any(EOU in u.text for u in listener.updates)
    # the second utterance starts where the first one's final ended; the stream itself was never reset
    assert eou_finals[0].start_time == 0.0
    assert eou_finals[1].start_time == eou_finals[0].end_time
    assert eou_finals[0].end_time <= len(first) / 16000
    assert not flush_final.end_of_utterance and flush_final.text == ""
    assert stream.stats.segments == 1


async def test_stt_stream_ends_speech_at_the_models_end_of_utterance(
    eou_engine: parakeet.ParakeetEngine,
) -> None:
    clip = utterance(1.5, seed=72)
    offline = (await eou_engine.transcribe(clip)).text
    events: list[stt.SpeechEvent] = []
    async with parakeet.STT(engine=eou_engine).stream() as stream:
        for frame in split_frames(to_frame(clip)):
            stream.push_frame(frame)
        async with asyncio.timeout(30):  # no flush: the model's <EOU> alone must end the speech
            async for event in stream:
                events.append(event)
                if event.type == stt.SpeechEventType.END_OF_SPEECH:
                    break
        stream.end_input()
        rest = [event async for event in stream]

    types = [e.type for e in events]
    assert types[0] == stt.SpeechEventType.START_OF_SPEECH
    assert types[-2:] == [stt.SpeechEventType.FINAL_TRANSCRIPT, stt.SpeechEventType.END_OF_SPEECH]
    assert events[-2].alternatives[0].text == offline and words(offline)
    # end_input's flush: an empty final, no second end of speech, and the stream ends
    finals = [e.alternatives[0].text for e in rest if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert finals == [""]
    assert stt.SpeechEventType.END_OF_SPEECH not in [e.type for e in rest]


def test_markers_split_a_step_and_never_reach_the_text() -> None:
    eou, w1, w2, w3 = 1, 10, 11, 12
    state = StreamState.create(
        StreamingConfig(left=0.0, chunk=0.08, right=0.0), sample_rate=16000, frame_seconds=0.08
    )

    def step(tokens: list[int]) -> parakeet.StreamUpdate | None:
        state.push(np.zeros(1280, np.float32))
        assert state.plan() is not None
        out = StepOutput(
            tokens=tokens, confidences=[0.5] * len(tokens), decoder_state="kept", frames_encoded=1
        )
        return state.commit(
            out,
            sample_rate=16000,
            detokenize=lambda ids: " ".join(map(str, ids)),
            end_tokens=frozenset({eou}),
        )

    update = step([eou, w1])  # a marker before any words ends nothing
    assert update is not None and not update.final and update.text == "10"
    update = step([w2, eou, w3])
    assert update is not None and update.final and update.end_of_utterance
    assert update.text == "10 11" and update.end_time == 0.16
    assert state.decoder_state == "kept"  # the model goes on from its own state
    update = step([eou, w2])  # w3 carried over: it ends the next utterance at once
    assert update is not None and update.text == "12" and update.start_time == 0.16
    update = step([])
    assert update is None  # nothing changed since w2 began the current utterance
    state.flush()
    assert state.plan() is None
    final = state.commit(None, sample_rate=16000, detokenize=lambda ids: " ".join(map(str, ids)))
    assert final is not None and final.text == "11" and not final.end_of_utterance
