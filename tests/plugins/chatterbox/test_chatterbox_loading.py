"""Loading: checkpoint directories, hub names, devices and dtypes; the process-wide engine cache."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import chatterbox.tts
import chatterbox.tts_turbo
import pytest
import torch
from chatterbox.models.t3 import T3
from livekit.plugins import chatterbox as plugin
from livekit.plugins.chatterbox import loading, testing
from safetensors.torch import save_file
from torch import nn


def assert_one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, message
    return message


def test_load_engine_shares_one_engine_per_model_and_device(
    engine: plugin.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plugin.load_engine("synthetic-tiny", device="cpu") is engine
    assert plugin.load_engine("synthetic-tiny", device="auto") is engine  # auto -> cpu here
    assert (engine.model_name, engine.device, engine.sample_rate) == ("synthetic-tiny", "cpu", 24000)
    assert engine.model.variant == "original"
    assert engine.model.tts.conds is not None  # built-in voice from the synthetic reference clip


def test_checkpoint_directory_loads_through_from_local(
    engine: plugin.ChatterboxEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_local always builds the 520M T3 (T3() without config), so T3 is swapped for a tiny one here;
    everything else (file layout, state dicts, tokenizer, conds.pt, dispatch) is the real path."""

    def tiny_t3() -> T3:
        t3 = T3(testing.t3_config("tiny"))
        t3.speech_head = nn.Linear(t3.dim, t3.hp.speech_tokens_dict_size, bias=True)
        return t3

    tts = engine.model.tts
    save_file(tts.ve.state_dict(), tmp_path / "ve.safetensors")
    t3_state = {k: v.contiguous() for k, v in tiny_t3().state_dict().items()}
    save_file(t3_state, tmp_path / "t3_cfg.safetensors")
    # from_local loads s3gen non-strictly: a subset keeps this file small
    hift_state = {k: v for k, v in tts.s3gen.state_dict().items() if k.startswith("mel2wav.")}
    save_file(hift_state, tmp_path / "s3gen.safetensors")
    tts.tokenizer.tokenizer.save(str(tmp_path / "tokenizer.json"))
    tts.conds.save(tmp_path / "conds.pt")
    monkeypatch.setattr(chatterbox.tts, "T3", tiny_t3)
    loaded = loading.load_model(str(tmp_path), device="cpu")

    assert (loaded.name, loaded.variant) == (str(tmp_path), "original")
    for name, value in loaded.tts.t3.state_dict().items():
        assert torch.equal(value, t3_state[name]), name
    for name, value in hift_state.items():
        assert torch.equal(loaded.tts.s3gen.state_dict()[name], value), name
    assert torch.equal(loaded.tts.conds.t3.speaker_emb, tts.conds.t3.speaker_emb)
    assert loaded.tts.tokenizer.encode("Hi there.") == tts.tokenizer.encode("Hi there.")


def test_turbo_checkpoint_directory_uses_the_turbo_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t3_turbo_v1.safetensors").touch()
    calls: list[tuple[Path, str]] = []

    def from_local(ckpt_dir: Path, device: str) -> SimpleNamespace:
        calls.append((Path(ckpt_dir), device))
        return SimpleNamespace(t3=nn.Linear(2, 2), conds=None)

    monkeypatch.setattr(chatterbox.tts_turbo.ChatterboxTurboTTS, "from_local", from_local)
    loaded = loading.load_model(str(tmp_path), device="cpu")
    assert loaded.variant == "turbo"
    assert calls == [(tmp_path, "cpu")]


def test_directory_without_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(plugin.ModelLoadError) as info:
        loading.load_model(str(tmp_path), device="cpu")
    assert "t3_cfg.safetensors" in assert_one_line(info.value)


def test_missing_directory_is_a_one_line_error() -> None:
    with pytest.raises(plugin.ModelLoadError) as info:
        loading.load_model("./no/such/checkpoint", device="cpu")
    assert "does not exist" in assert_one_line(info.value)


def test_unknown_hub_name_offline_is_a_one_line_error() -> None:
    with pytest.raises(plugin.ModelLoadError) as info:
        loading.load_model("nobody-here/not-a-chatterbox-model", device="cpu")
    message = assert_one_line(info.value)
    assert "nobody-here/not-a-chatterbox-model" in message and "HF_HUB_OFFLINE" in message


def test_synthetic_names_are_the_testing_package_s() -> None:
    """The runtime loader does not build random-weight models; it says where they come from."""
    with pytest.raises(plugin.ModelLoadError) as info:
        loading.load_model("synthetic-tiny", device="cpu")
    assert "livekit.plugins.chatterbox.testing" in assert_one_line(info.value)
    with pytest.raises(plugin.ModelLoadError) as info:
        testing.load_model("synthetic-huge", device="cpu")
    assert "synthetic-tiny" in assert_one_line(info.value)


def test_cuda_requested_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for load, model in (
        (loading.load_model, "ResembleAI/chatterbox"),
        (plugin.load_engine, "ResembleAI/chatterbox"),
        (testing.load_model, "synthetic-tiny"),
        (testing.load_engine, "synthetic-tiny"),
    ):
        with pytest.raises(plugin.ModelLoadError) as info:
            load(model, device="cuda")
        assert "CUDA is not available" in assert_one_line(info.value)
    assert loading.resolve_device("auto") == torch.device("cpu")


def test_dtypes(caplog: pytest.LogCaptureFixture) -> None:
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="livekit.plugins.chatterbox"):
        assert loading.resolve_dtype("bfloat16", cpu) == torch.float32
    assert "only applies on CUDA" in caplog.text
    assert loading.resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(plugin.ModelLoadError) as info:
        loading.resolve_dtype("int8", cpu)
    assert "bfloat16" in assert_one_line(info.value)
