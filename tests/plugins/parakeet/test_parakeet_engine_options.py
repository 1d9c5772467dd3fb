"""Engine options: the registry keyed by every option, options that do not fit the model, and the app settings
(VOICE_AGENT_STT_*) reaching the engine through `agent.models.load_stt` (synthetic-* models included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing
from pydantic import ValidationError

from agent.errors import StartupError
from agent.models import load_stt
from agent.settings import Settings


def test_registry_key_includes_the_engine_options(
    tiny_engine: parakeet.ParakeetEngine, tiny_nemo: Path
) -> None:
    def load(**options: object) -> parakeet.ParakeetEngine:
        return parakeet.load_engine(str(tiny_nemo), device="cpu", name="synthetic-tiny", **options)  # type: ignore[arg-type]

    same = load(streaming=parakeet.StreamingConfig(), max_batch_size=16, max_wait=0.02, watchdog_timeout=30.0)
    assert same is tiny_engine
    assert load(cuda_graphs=True) is tiny_engine  # off on CPU
    assert load(warmup_timeout=60.0) is tiny_engine  # only for loading

    windows = parakeet.StreamingConfig(left=2.4, chunk=0.32, right=0.16)
    small = load(streaming=windows)
    narrow = load(max_batch_size=2, max_wait=0.0)
    watchful = load(watchdog_timeout=5.0)
    try:
        assert len({id(tiny_engine), id(small), id(narrow), id(watchful)}) == 4
        assert (
            small.streaming_config == windows and tiny_engine.streaming_config == parakeet.StreamingConfig()
        )
        assert (narrow.max_batch_size, narrow.max_wait) == (2, 0.0)
        assert load(streaming=windows) is small
        assert parakeet.load_engine(str(tiny_nemo), device="cpu").model_name == str(tiny_nemo)  # by default
    finally:
        small.close()
        narrow.close()
        watchful.close()
        parakeet.load_engine(str(tiny_nemo), device="cpu").close()


def test_options_that_do_not_fit_the_model(tiny_nemo: Path) -> None:
    cache_aware = str(testing.ensure_synthetic_model("synthetic-tiny-cache-aware"))
    with pytest.raises(parakeet.ModelLoadError, match="cache-aware streaming models only"):
        parakeet.load_engine(str(tiny_nemo), device="cpu", att_context_size=(70, 1))
    with pytest.raises(parakeet.ModelLoadError, match=r"\[70, 3\] is not one of the model's"):
        parakeet.load_engine(cache_aware, device="cpu", att_context_size=(70, 3))
    for bad in ({"max_batch_size": 0}, {"watchdog_timeout": 0}, {"warmup_timeout": -1}):
        with pytest.raises(parakeet.ModelLoadError, match=next(iter(bad))):
            parakeet.load_engine(str(tiny_nemo), device="cpu", **bad)  # type: ignore[arg-type]


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
        assert (buffered.model_name, cache_aware.model_name) == (
            "synthetic-tiny",
            "synthetic-tiny-cache-aware",
        )
        assert buffered.streaming_config == parakeet.StreamingConfig(left=2.4, chunk=0.32, right=0.16)
        assert (buffered.max_batch_size, buffered.max_wait) == (3, 0.005)
        assert cache_aware.family == "cache-aware" and "att_context_size [70, 0]" in cache_aware.describe()
    finally:
        buffered.close()
        cache_aware.close()

    with pytest.raises(StartupError, match="cache-aware streaming models only.*VOICE_AGENT_STT_"):
        load_stt(settings(stt_att_context_size=(70, 1)))
    with pytest.raises(
        StartupError, match="unknown synthetic STT model 'synthetic-nope'.*VOICE_AGENT_STT_MODEL"
    ):
        load_stt(settings(stt_model="synthetic-nope"))


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
