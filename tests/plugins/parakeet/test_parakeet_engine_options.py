"""Engine options: the CUDA-graph decoder switch, the registry keyed by every option, options that do not fit
the model, and the app settings (VOICE_AGENT_STT_*) reaching the engine through `agent.models.load_stt`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from livekit.plugins import parakeet
from livekit.plugins.parakeet import models
from pydantic import ValidationError

from agent.errors import StartupError
from agent.models import load_stt
from agent.settings import Settings


def test_cuda_graph_decoder_option_lands_in_the_decoding_config(tiny_nemo: Path) -> None:
    asr = models.load_asr_model(str(tiny_nemo), torch.device("cpu"), cuda_graphs=True)
    # forced off on CPU, without error
    assert asr.cfg.decoding.greedy.use_cuda_graph_decoder is False
    assert asr.decoding.decoding.decoding_computer.allow_cuda_graphs is False

    for wanted in (True, False):
        cfg = models.decoding_config(asr, cuda_graphs=wanted)
        assert cfg.greedy.use_cuda_graph_decoder is wanted
        assert cfg.strategy == "greedy_batch" and cfg.greedy.loop_labels is True
    assert asr.cfg.decoding.greedy.use_cuda_graph_decoder is False  # a copy: the model's config is untouched


def test_registry_key_includes_the_engine_options(tiny_engine: parakeet.ParakeetEngine) -> None:
    same = parakeet.load_engine(
        "synthetic-tiny", device="cpu", streaming=parakeet.StreamingConfig(), max_batch_size=16, max_wait=0.02
    )
    assert same is tiny_engine
    assert parakeet.load_engine("synthetic-tiny", device="cpu", cuda_graphs=True) is tiny_engine  # off on CPU

    windows = parakeet.StreamingConfig(left=2.4, chunk=0.32, right=0.16)
    small = parakeet.load_engine("synthetic-tiny", device="cpu", streaming=windows)
    narrow = parakeet.load_engine("synthetic-tiny", device="cpu", max_batch_size=2, max_wait=0.0)
    try:
        assert len({id(tiny_engine), id(small), id(narrow)}) == 3
        assert (
            small.streaming_config == windows and tiny_engine.streaming_config == parakeet.StreamingConfig()
        )
        assert (narrow.max_batch_size, narrow.max_wait) == (2, 0.0)
        assert parakeet.load_engine("synthetic-tiny", device="cpu", streaming=windows) is small
    finally:
        small.close()
        narrow.close()


def test_options_that_do_not_fit_the_model(synthetic_cache: Path) -> None:
    with pytest.raises(parakeet.ModelLoadError, match="cache-aware streaming models only"):
        parakeet.load_engine("synthetic-tiny", device="cpu", att_context_size=(70, 1))
    with pytest.raises(parakeet.ModelLoadError, match=r"\[70, 3\] is not one of the model's"):
        parakeet.load_engine("synthetic-tiny-cache-aware", device="cpu", att_context_size=(70, 3))
    with pytest.raises(parakeet.ModelLoadError, match="max_batch_size"):
        parakeet.load_engine("synthetic-tiny", device="cpu", max_batch_size=0)


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"stt_model": "synthetic-tiny", "device": "cpu"}
    return Settings(_env_file=None, **(base | overrides))  # type: ignore[arg-type]


def test_stt_settings_reach_the_engine(synthetic_cache: Path) -> None:
    buffered = load_stt(
        settings(
            stt_left_context=2.4,
            stt_chunk_size=0.32,
            stt_right_context=0.16,
            stt_max_batch_size=3,
            stt_max_wait_ms=5,
            stt_cuda_graphs=False,
        )
    )
    cache_aware = load_stt(settings(stt_model="synthetic-tiny-cache-aware", stt_att_context_size=(70, 0)))
    try:
        assert buffered.streaming_config == parakeet.StreamingConfig(left=2.4, chunk=0.32, right=0.16)
        assert (buffered.max_batch_size, buffered.max_wait) == (3, 0.005)
        assert cache_aware.family == "cache-aware" and "att_context_size [70, 0]" in cache_aware.describe()
    finally:
        buffered.close()
        cache_aware.close()

    with pytest.raises(StartupError, match="cache-aware streaming models only.*VOICE_AGENT_STT_"):
        load_stt(settings(stt_att_context_size=(70, 1)))


def test_stt_settings_from_the_environment_and_their_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_AGENT_STT_ATT_CONTEXT_SIZE", "[70, 6]")
    monkeypatch.setenv("VOICE_AGENT_STT_MAX_WAIT_MS", "0")
    monkeypatch.setenv("VOICE_AGENT_STT_CUDA_GRAPHS", "false")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.stt_att_context_size, s.stt_max_wait_ms, s.stt_cuda_graphs) == ((70, 6), 0.0, False)
    assert (s.stt_left_context, s.stt_chunk_size, s.stt_right_context) == (5.6, 0.48, 0.32)
    for bad in (
        {"stt_chunk_size": 0},
        {"stt_left_context": -1},
        {"stt_right_context": -0.1},
        {"stt_max_batch_size": 0},
        {"stt_max_wait_ms": -1},
        {"stt_att_context_size": (0, 1)},
        {"stt_att_context_size": (70, -1)},
    ):
        with pytest.raises(ValidationError):
            settings(**bad)
