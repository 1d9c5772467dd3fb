"""Model loading (loading.py): .nemo restore ready for batched greedy decoding, the CUDA-graph decoder switch,
Hugging Face names offline, missing or corrupt files, devices and dtypes; the runtime never imports `testing`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from livekit.plugins import parakeet
from livekit.plugins.parakeet import loading


def test_nemo_file_restores_ready_for_batched_greedy_decoding(tiny_nemo: Path) -> None:
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.asr.parts.submodules.transducer_decoding import GreedyBatchedTDTLabelLoopingComputer

    asr = loading.load_asr_model(str(tiny_nemo), torch.device("cpu"))

    assert isinstance(asr, EncDecRNNTBPEModel)
    assert not asr.training
    assert asr.preprocessor.featurizer.dither == 0.0 and asr.preprocessor.featurizer.pad_to == 0
    assert asr.cfg.decoding.strategy == "greedy_batch"
    assert isinstance(asr.decoding.decoding.decoding_computer, GreedyBatchedTDTLabelLoopingComputer)
    # the parakeet-tdt layout: 128 mels, 8x subsampling, TDT durations 0..4
    assert asr.cfg.preprocessor.features == 128
    assert asr.encoder.subsampling_factor == 8
    assert list(asr.cfg.decoding.durations) == [0, 1, 2, 3, 4]


def test_cuda_graph_decoder_option_lands_in_the_decoding_config(tiny_nemo: Path) -> None:
    asr = loading.load_asr_model(str(tiny_nemo), torch.device("cpu"), cuda_graphs=True)
    # forced off on CPU, without error
    assert asr.cfg.decoding.greedy.use_cuda_graph_decoder is False
    assert asr.decoding.decoding.decoding_computer.allow_cuda_graphs is False

    for wanted in (True, False):
        cfg = loading.decoding_config(asr, cuda_graphs=wanted)
        assert cfg.greedy.use_cuda_graph_decoder is wanted
        assert cfg.strategy == "greedy_batch" and cfg.greedy.loop_labels is True
    assert asr.cfg.decoding.greedy.use_cuda_graph_decoder is False  # a copy: the model's config is untouched


def test_unknown_hugging_face_name_fails_with_one_clear_line() -> None:
    with pytest.raises(parakeet.ModelLoadError) as err:
        loading.load_asr_model("nvidia/no-such-parakeet", torch.device("cpu"))
    message = str(err.value)
    assert "\n" not in message
    assert "'nvidia/no-such-parakeet' not found" in message
    assert "not a local .nemo file" in message and "Hugging Face download failed" in message


def test_synthetic_names_are_for_the_testing_builders() -> None:
    # the loader builds nothing: `testing` makes the .nemo file, which then loads like any local one
    with pytest.raises(parakeet.ModelLoadError, match="random-weight test model: build it with") as err:
        loading.load_asr_model("synthetic-tiny", torch.device("cpu"))
    assert "\n" not in str(err.value)


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


def test_cuda_requested_without_cuda(tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(parakeet.ModelLoadError, match="device 'cuda' requested but CUDA is not available"):
        parakeet.load_engine(str(tiny_nemo), device="cuda")
    assert loading.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("device", ["tpu", "not a device"])
def test_unsupported_device(device: str) -> None:
    with pytest.raises(parakeet.ModelLoadError, match="device"):
        loading.resolve_device(device)


def test_dtypes() -> None:
    cpu = torch.device("cpu")
    assert set(loading.DTYPES) == {"float32", "bfloat16", "float16"}
    assert loading.resolve_dtype("float32", cpu) == torch.float32
    assert loading.resolve_dtype("bfloat16", cpu) == torch.float32  # autocast is CUDA-only here
    with pytest.raises(parakeet.ModelLoadError, match="unknown STT dtype 'int8'"):
        loading.resolve_dtype("int8", cpu)


def test_the_runtime_never_imports_testing() -> None:
    code = (
        "import sys; from livekit.plugins import parakeet; "
        "print(sorted(m for m in sys.modules if m.startswith('livekit.plugins.parakeet')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "livekit.plugins.parakeet.scheduler" in loaded and "livekit.plugins.parakeet.stt" in loaded
    assert "testing" not in loaded and "synthetic_audio" not in loaded
