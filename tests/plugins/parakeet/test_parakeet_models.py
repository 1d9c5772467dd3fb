"""Model loading: synthetic build + cache, .nemo restore, Hugging Face names offline, devices and dtypes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from livekit.plugins import parakeet
from livekit.plugins.parakeet import models, synthetic


def test_synthetic_model_is_built_once_into_the_cache(synthetic_cache: Path, tiny_nemo: Path) -> None:
    assert tiny_nemo.parent == synthetic_cache and tiny_nemo.suffix == ".nemo"
    mtime = tiny_nemo.stat().st_mtime_ns
    assert synthetic.ensure_synthetic_model("synthetic-tiny") == tiny_nemo
    assert tiny_nemo.stat().st_mtime_ns == mtime
    assert not list(synthetic_cache.glob("*.part"))


def test_nemo_file_restores_ready_for_batched_greedy_decoding(tiny_nemo: Path) -> None:
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.asr.parts.submodules.transducer_decoding import GreedyBatchedTDTLabelLoopingComputer

    asr = models.load_asr_model(str(tiny_nemo), torch.device("cpu"))

    assert isinstance(asr, EncDecRNNTBPEModel)
    assert not asr.training
    assert asr.preprocessor.featurizer.dither == 0.0 and asr.preprocessor.featurizer.pad_to == 0
    assert asr.cfg.decoding.strategy == "greedy_batch"
    assert isinstance(asr.decoding.decoding.decoding_computer, GreedyBatchedTDTLabelLoopingComputer)
    # the parakeet-tdt layout: 128 mels, 8x subsampling, TDT durations 0..4
    assert asr.cfg.preprocessor.features == 128
    assert asr.encoder.subsampling_factor == 8
    assert list(asr.cfg.decoding.durations) == [0, 1, 2, 3, 4]


def test_synthetic_name_loads_through_the_restore_path(
    tiny_nemo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="livekit.plugins.parakeet"):
        asr = models.load_asr_model("synthetic-tiny", torch.device("cpu"))
    assert asr.tokenizer.text_to_ids(synthetic.SYNTHETIC_WORD)
    assert any("RANDOM WEIGHTS" in r.getMessage() for r in caplog.records)


def test_unknown_hugging_face_name_fails_with_one_clear_line(synthetic_cache: Path) -> None:
    with pytest.raises(parakeet.ModelLoadError) as err:
        models.load_asr_model("nvidia/no-such-parakeet", torch.device("cpu"))
    message = str(err.value)
    assert "\n" not in message
    assert "'nvidia/no-such-parakeet' not found" in message
    assert "not a local .nemo file" in message and "Hugging Face download failed" in message


def test_missing_nemo_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(parakeet.ModelLoadError, match="missing.nemo' not found"):
        parakeet.load_engine(str(tmp_path / "missing.nemo"), device="cpu")
    with pytest.raises(parakeet.ModelLoadError, match="is not a file"):
        parakeet.load_engine(str(tmp_path), device="cpu")


def test_corrupt_nemo_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nemo"
    bad.write_bytes(b"not a tar archive")
    with pytest.raises(parakeet.ModelLoadError, match="could not restore"):
        parakeet.load_engine(str(bad), device="cpu")


def test_cuda_requested_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(parakeet.ModelLoadError, match="device 'cuda' requested but CUDA is not available"):
        parakeet.load_engine("synthetic-tiny", device="cuda")
    assert models.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("device", ["tpu", "not a device"])
def test_unsupported_device(device: str) -> None:
    with pytest.raises(parakeet.ModelLoadError, match="device"):
        models.resolve_device(device)


def test_dtypes() -> None:
    cpu = torch.device("cpu")
    assert models.resolve_dtype("float32", cpu) == torch.float32
    assert models.resolve_dtype("bfloat16", cpu) == torch.float32  # autocast is CUDA-only here
    with pytest.raises(parakeet.ModelLoadError, match="unknown STT dtype 'int8'"):
        models.resolve_dtype("int8", cpu)
