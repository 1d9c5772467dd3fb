"""The livekit STT (stt.py): recognize() on real AudioFrames, resampling, the StreamAdapter + VAD path, streams,
errors, and the framework restarting a stream after an engine failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, APIError, Plugin, stt
from livekit.plugins import parakeet, silero
from livekit.plugins.parakeet import testing as sa
from livekit.plugins.parakeet.streaming import StepOutput
from parakeet_helpers import espeak, private_engine, resample, split_frames, to_frame, words

NO_RETRY = APIConnectOptions(max_retry=0)
SPEECH = sa.pad(sa.speech_like(1.5), before=0.3, after=0.3)


@pytest.fixture
def tiny_stt(tiny_engine: parakeet.ParakeetEngine) -> parakeet.STT:
    return parakeet.STT(engine=tiny_engine)


def test_plugin_is_registered_and_described(tiny_stt: parakeet.STT) -> None:
    assert any(p.package == "livekit.plugins.parakeet" for p in Plugin.registered_plugins)
    caps = tiny_stt.capabilities
    assert caps.streaming and caps.interim_results and caps.manual_flush and caps.offline_recognize
    assert tiny_stt.model == "synthetic-tiny"
    assert tiny_stt.provider == "nvidia-nemo-local"


async def test_recognize_speech(tiny_stt: parakeet.STT) -> None:
    event = await tiny_stt.recognize(to_frame(SPEECH))
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    alt = event.alternatives[0]
    assert set(words(alt.text)) == {sa.SYNTHETIC_WORD}
    assert alt.language == "en"
    assert 0.0 < alt.confidence <= 1.0
    assert alt.end_time == pytest.approx(2.1, abs=0.01)
    assert (await tiny_stt.recognize(split_frames(to_frame(SPEECH)))).alternatives[0].text == alt.text


async def test_espeak_speech(tiny_stt: parakeet.STT, tmp_path: Path) -> None:
    speech, rate = espeak("Please transfer me to a human.", tmp_path)  # 22.05 kHz: resampled by the plugin
    alt = (await tiny_stt.recognize(to_frame(speech, rate))).alternatives[0]
    assert set(words(alt.text)) == {sa.SYNTHETIC_WORD}
    assert alt.end_time == pytest.approx(len(speech) / rate, abs=0.01)


@pytest.mark.parametrize("rate", [8000, 24000, 44100, 48000])
async def test_other_sample_rates_are_resampled(tiny_stt: parakeet.STT, rate: int) -> None:
    alt = (await tiny_stt.recognize(to_frame(resample(SPEECH, rate), rate))).alternatives[0]
    assert alt.end_time == pytest.approx(2.1, abs=0.02)
    assert set(words(alt.text)) == {sa.SYNTHETIC_WORD}


async def test_stereo_48k_is_downmixed(tiny_stt: parakeet.STT) -> None:
    reference = (await tiny_stt.recognize(to_frame(SPEECH))).alternatives[0].text
    mono48 = resample(SPEECH, 48000)
    # speech in the right channel only: a left-channel-only reader would hear silence
    stereo = np.stack([np.zeros_like(mono48), mono48 * 1.9], axis=1)
    alt = (await tiny_stt.recognize(split_frames(to_frame(stereo, 48000, 2)))).alternatives[0]
    assert alt.text == reference
    assert alt.end_time == pytest.approx(2.1, abs=0.02)


async def test_empty_buffers_give_an_empty_final_without_loading_a_model(tmp_path: Path) -> None:
    unloadable = parakeet.STT(model=str(tmp_path / "never-loaded.nemo"), device="cpu")
    for buffer in ([], to_frame(np.zeros(0, np.float32), 48000, 2), [to_frame(np.zeros(0, np.float32))]):
        event = await unloadable.recognize(buffer)
        assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
        assert event.alternatives[0].text == ""


async def test_stream_adapter_with_silero_vad(tiny_stt: parakeet.STT) -> None:
    """The path AgentSession takes for a non-streaming STT: VAD segments → recognize() → final transcripts."""
    gap = np.zeros(16000, np.float32)
    audio = np.concatenate([gap, sa.speech_like(1.5, seed=1), gap, sa.speech_like(1.0, seed=2), gap])
    stream = stt.StreamAdapter(stt=tiny_stt, vad=silero.VAD.load()).stream()
    for frame in split_frames(to_frame(audio)):
        stream.push_frame(frame)
    stream.end_input()
    events = [ev async for ev in stream]
    kinds = [ev.type for ev in events if ev.type != stt.SpeechEventType.RECOGNITION_USAGE]
    assert (
        kinds
        == [
            stt.SpeechEventType.START_OF_SPEECH,
            stt.SpeechEventType.END_OF_SPEECH,
            stt.SpeechEventType.FINAL_TRANSCRIPT,
        ]
        * 2
    )
    finals = [ev.alternatives[0].text for ev in events if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert all(set(words(text)) == {sa.SYNTHETIC_WORD} for text in finals)


async def test_engine_failure_is_an_api_error(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(tiny_engine.steps, "utterance", boom)
    with pytest.raises(APIError, match="kernel exploded") as err:
        await parakeet.STT(engine=tiny_engine).recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert not err.value.retryable


async def test_out_of_memory_is_retryable(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(tiny_engine.steps, "utterance", oom)
    with pytest.raises(APIError, match="out of device memory") as err:
        await parakeet.STT(engine=tiny_engine).recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert err.value.retryable


@pytest.fixture
def closed_engine(tiny_nemo: Path) -> parakeet.ParakeetEngine:
    """A private engine (not the shared registry one), already closed."""
    engine = private_engine()
    engine.close()
    return engine


async def test_closed_engine_is_a_non_retryable_connection_error(
    closed_engine: parakeet.ParakeetEngine,
) -> None:
    engine = closed_engine
    with pytest.raises(APIConnectionError, match="closed") as err:
        await parakeet.STT(engine=engine).recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert not err.value.retryable


async def test_unloadable_model_is_a_non_retryable_connection_error(tmp_path: Path) -> None:
    broken = parakeet.STT(model=str(tmp_path / "missing.nemo"), device="cpu")
    with pytest.raises(APIConnectionError, match="missing.nemo' not found") as err:
        await broken.recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert not err.value.retryable


async def test_prewarm_returns_at_once_and_logs_load_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="livekit.plugins.parakeet"):
        parakeet.STT(model=str(tmp_path / "missing.nemo"), device="cpu").prewarm()
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.05)
    assert "STT prewarm failed" in caplog.records[0].getMessage()


# -- streaming ---------------------------------------------------------------------------------------------

Kind = stt.SpeechEventType


async def stream_events(
    stream: stt.RecognizeStream, segments: list[rtc.AudioFrame], *, settle: float = 0.0
) -> list[stt.SpeechEvent]:
    """Push each segment in 20 ms frames followed by a flush, then end the input; all events."""
    for segment in segments:
        for frame in split_frames(segment):
            stream.push_frame(frame)
        if settle:
            await asyncio.sleep(settle)  # lets the engine step through the audio before the flush
        stream.flush()
    stream.end_input()
    return [ev async for ev in stream]


async def test_stream_events_per_segment(tiny_stt: parakeet.STT) -> None:
    speech = sa.pad(sa.speech_like(2.0, seed=4), before=0.3, after=0.4)
    offline = (await tiny_stt.recognize(to_frame(speech))).alternatives[0].text
    async with tiny_stt.stream() as stream:
        events = await stream_events(
            stream, [to_frame(speech), to_frame(np.zeros(16000, np.float32))], settle=1.0
        )

    kinds = [ev.type for ev in events]
    interims = [i for i, k in enumerate(kinds) if k == Kind.INTERIM_TRANSCRIPT]
    assert kinds[0] == Kind.START_OF_SPEECH and interims and interims[0] == 1
    assert kinds[interims[-1] + 1 :] == [
        Kind.FINAL_TRANSCRIPT, Kind.END_OF_SPEECH, Kind.RECOGNITION_USAGE,  # the speech
        Kind.FINAL_TRANSCRIPT, Kind.RECOGNITION_USAGE,  # the silence: no words, no speech events
        Kind.FINAL_TRANSCRIPT, Kind.RECOGNITION_USAGE,  # end_input flushes an empty segment
    ]  # fmt: skip
    finals = [ev.alternatives[0] for ev in events if ev.type == Kind.FINAL_TRANSCRIPT]
    assert [f.text for f in finals] == [offline, "", ""]
    assert finals[0].language == "en" and 0.0 < finals[0].confidence <= 1.0
    assert finals[0].end_time == pytest.approx(2.7, abs=0.01)
    assert finals[1].start_time == pytest.approx(2.7, abs=0.01)
    usage = [ev.recognition_usage for ev in events if ev.type == Kind.RECOGNITION_USAGE]
    assert [u.audio_duration for u in usage if u] == pytest.approx([2.7, 1.0, 0.0], abs=0.01)
    request_ids = {ev.request_id for ev in events[: kinds.index(Kind.RECOGNITION_USAGE) + 1]}
    assert len(request_ids) == 1  # one id per segment


async def test_stream_resamples_and_downmixes(tiny_stt: parakeet.STT) -> None:
    reference = (await tiny_stt.recognize(to_frame(SPEECH))).alternatives[0].text
    mono48 = resample(SPEECH, 48000)
    stereo = np.stack([np.zeros_like(mono48), mono48 * 1.9], axis=1)  # speech in the right channel only
    async with tiny_stt.stream() as stream:
        stream.push_frame(to_frame(np.zeros((0, 2), np.float32), 48000, 2))  # empty frames are ignored
        events = await stream_events(stream, [to_frame(stereo, 48000, 2)])
    final = next(ev for ev in events if ev.type == Kind.FINAL_TRANSCRIPT).alternatives[0]
    # resampling shifts samples a little: the word count is what the synthetic model's transcript carries
    assert len(words(final.text)) == pytest.approx(len(words(reference)), abs=1)
    assert set(words(final.text)) == {sa.SYNTHETIC_WORD}
    assert final.end_time == pytest.approx(2.1, abs=0.02)


async def test_stream_step_failure_is_a_retryable_api_error(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(inputs: list[object]) -> list[object]:
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(tiny_engine.steps, "stream", boom)
    stream = parakeet.STT(engine=tiny_engine).stream(conn_options=NO_RETRY)
    with pytest.raises(APIError, match="kernel exploded") as err:
        await stream_events(stream, [to_frame(SPEECH)])
    assert err.value.retryable
    await stream.aclose()
    assert tiny_engine.active_streams == 0


async def test_closing_a_stream_frees_its_engine_slot(tiny_engine: parakeet.ParakeetEngine) -> None:
    stream = parakeet.STT(engine=tiny_engine).stream()
    for frame in split_frames(to_frame(SPEECH)):
        stream.push_frame(frame)
    for _ in range(200):
        if tiny_engine.active_streams:
            break
        await asyncio.sleep(0.01)
    assert tiny_engine.active_streams == 1
    await stream.aclose()
    assert tiny_engine.active_streams == 0


async def test_stream_on_a_closed_engine_is_a_non_retryable_connection_error(
    closed_engine: parakeet.ParakeetEngine,
) -> None:
    engine = closed_engine
    stream = parakeet.STT(engine=engine).stream(conn_options=NO_RETRY)
    with pytest.raises(APIConnectionError, match="closed") as err:
        await stream_events(stream, [to_frame(SPEECH)])
    assert not err.value.retryable


async def test_the_framework_restarts_a_stream_the_engine_failed(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduler fault fails the stream with a retryable error; livekit-agents' RecognizeStream then runs the
    plugin's stream again (a new engine stream), and the next speech is transcribed."""
    faults = 0
    step = tiny_engine.steps.stream

    def fails_once(inputs: list[object]) -> list[StepOutput]:
        nonlocal faults
        if faults == 0:
            faults += 1
            return []  # no output for any input: the scheduler's commit cannot go on
        return step(inputs)

    monkeypatch.setattr(tiny_engine.steps, "stream", fails_once)
    speech_stt = parakeet.STT(engine=tiny_engine)
    errors: list[stt.STTError] = []
    speech_stt.on("error", errors.append)
    second = sa.pad(sa.speech_like(1.8, seed=7), before=0.3, after=0.3)
    offline = (await speech_stt.recognize(to_frame(second))).alternatives[0].text

    stream = speech_stt.stream(conn_options=APIConnectOptions(max_retry=2, retry_interval=0.1))
    for frame in split_frames(to_frame(SPEECH)):
        stream.push_frame(frame)
    stream.flush()
    async with asyncio.timeout(30):
        while not errors:
            await asyncio.sleep(0.02)
    assert errors[0].recoverable and isinstance(errors[0].error, parakeet.EngineError)
    events = await stream_events(stream, [to_frame(second)])
    await stream.aclose()

    finals = [ev.alternatives[0].text for ev in events if ev.type == Kind.FINAL_TRANSCRIPT]
    assert finals[0] == offline and words(offline)  # the first segment was lost with the failed stream
    assert Kind.START_OF_SPEECH in [ev.type for ev in events]
    assert len(errors) == 1 and faults == 1
    assert tiny_engine.active_streams == 0
