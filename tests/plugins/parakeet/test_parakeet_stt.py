"""The livekit STT: recognize() on real AudioFrames, resampling, the StreamAdapter + VAD path, and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from livekit.agents import APIConnectionError, APIConnectOptions, APIError, Plugin, stt
from livekit.plugins import parakeet, silero
from livekit.plugins.parakeet import models, synthetic
from livekit.plugins.parakeet import synthetic_audio as sa
from parakeet_helpers import espeak, resample, split_frames, to_frame, words

NO_RETRY = APIConnectOptions(max_retry=0)
SPEECH = sa.pad(sa.speech_like(1.5), before=0.3, after=0.3)


@pytest.fixture
def tiny_stt(tiny_engine: parakeet.ParakeetEngine) -> parakeet.STT:
    return parakeet.STT(model="synthetic-tiny", device="cpu")


def test_plugin_is_registered_and_described(tiny_stt: parakeet.STT) -> None:
    assert any(p.package == "livekit.plugins.parakeet" for p in Plugin.registered_plugins)
    assert not tiny_stt.capabilities.streaming and not tiny_stt.capabilities.interim_results
    assert tiny_stt.model == "synthetic-tiny"
    assert tiny_stt.provider == "nvidia-nemo-local"


async def test_recognize_speech(tiny_stt: parakeet.STT) -> None:
    event = await tiny_stt.recognize(to_frame(SPEECH))
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    alt = event.alternatives[0]
    assert set(words(alt.text)) == {synthetic.SYNTHETIC_WORD}
    assert alt.language == "en"
    assert 0.0 < alt.confidence <= 1.0
    assert alt.end_time == pytest.approx(2.1, abs=0.01)
    assert (await tiny_stt.recognize(split_frames(to_frame(SPEECH)))).alternatives[0].text == alt.text


async def test_espeak_speech(tiny_stt: parakeet.STT, tmp_path: Path) -> None:
    speech, rate = espeak("Please transfer me to a human.", tmp_path)  # 22.05 kHz: resampled by the plugin
    alt = (await tiny_stt.recognize(to_frame(speech, rate))).alternatives[0]
    assert set(words(alt.text)) == {synthetic.SYNTHETIC_WORD}
    assert alt.end_time == pytest.approx(len(speech) / rate, abs=0.01)


@pytest.mark.parametrize("rate", [8000, 24000, 44100, 48000])
async def test_other_sample_rates_are_resampled(tiny_stt: parakeet.STT, rate: int) -> None:
    alt = (await tiny_stt.recognize(to_frame(resample(SPEECH, rate), rate))).alternatives[0]
    assert alt.end_time == pytest.approx(2.1, abs=0.02)
    assert set(words(alt.text)) == {synthetic.SYNTHETIC_WORD}


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
    assert all(set(words(text)) == {synthetic.SYNTHETIC_WORD} for text in finals)


async def test_engine_failure_is_an_api_error(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(tiny_engine, "_infer", boom)
    with pytest.raises(APIError, match="kernel exploded") as err:
        await parakeet.STT(engine=tiny_engine).recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert not err.value.retryable


async def test_out_of_memory_is_retryable(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(clips: list[np.ndarray]) -> list[tuple[str, float]]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(tiny_engine, "_infer", oom)
    with pytest.raises(APIError) as err:
        await parakeet.STT(engine=tiny_engine).recognize(to_frame(SPEECH), conn_options=NO_RETRY)
    assert err.value.retryable


async def test_closed_engine_is_a_non_retryable_connection_error(tiny_nemo: Path) -> None:
    engine = parakeet.ParakeetEngine(
        models.load_asr_model(str(tiny_nemo), torch.device("cpu")),
        model_name="private",
        device=torch.device("cpu"),
    )
    engine.close()
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
