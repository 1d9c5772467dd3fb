"""Loading NeMo transducer models by Hugging Face name or local ``.nemo`` path, onto a device, for greedy batched
inference. (Random-weight models for tests are built by `testing`, then loaded here like any local file.)"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import torch

from .errors import one_line
from .log import logger
from .models import STTDtypes

if TYPE_CHECKING:
    from nemo.collections.asr.models import ASRModel
    from omegaconf import DictConfig

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in get_args(STTDtypes)}


class ModelLoadError(RuntimeError):
    """The STT model, device or dtype cannot be used; the message says what was tried and what to change."""


def resolve_device(device: str) -> torch.device:
    """ "auto" → cuda when available, else cpu. Raises ModelLoadError for an unusable device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ModelLoadError(
            f"invalid STT device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N' ({e})"
        ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device {device!r} requested but CUDA is not available (torch {torch.__version__}); "
                "set the STT device to 'cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    elif dev.type != "cpu":
        raise ModelLoadError(f"unsupported STT device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Compute dtype for inference. Reduced precision is used through autocast on CUDA only."""
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown STT dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    resolved = DTYPES[dtype]
    if resolved != torch.float32 and device.type != "cuda":
        logger.warning("STT dtype %s is only used on CUDA; running float32 on %s", dtype, device)
        return torch.float32
    if resolved == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        logger.warning("this GPU does not support bfloat16; running the STT in float16")
        return torch.float16
    return resolved


def load_asr_model(model: str, device: torch.device, *, cuda_graphs: bool = True) -> ASRModel:
    """Load `model` onto `device`, ready for greedy batched inference (blocking; seconds to minutes).

    `model` is a path to a ``.nemo`` file or a Hugging Face name (see `models.STTModels`).
    `cuda_graphs`: decode with NeMo's CUDA-graph label-looping decoder (CUDA only; off on CPU).
    """
    try:
        from nemo.collections.asr.models import ASRModel
    except ImportError as e:
        raise ModelLoadError(f"cannot import NeMo ASR ({e}); install nemo_toolkit[asr]") from e

    if model.endswith(".nemo") or os.path.exists(model):
        path = Path(model)
        if not path.is_file():
            problem = "is not a file" if path.exists() else "not found"
            raise ModelLoadError(
                f"STT model file {model!r} {problem}: set the model to an existing .nemo file"
            )
        asr = _restore(ASRModel, path, device)
    elif model.startswith("synthetic-"):  # a name, not a download: say where such models come from
        raise ModelLoadError(
            f"STT model {model!r} is a random-weight test model: build it with "
            "livekit.plugins.parakeet.testing.ensure_synthetic_model and load the .nemo path it returns"
        )
    else:
        try:
            asr = ASRModel.from_pretrained(model, map_location=device)
        except Exception as e:
            raise ModelLoadError(
                f"STT model {model!r} not found: not a local .nemo file, and Hugging Face download failed "
                f"(offline?): {one_line(e)}. Set the model to a .nemo path, or make the name reachable "
                "(network, or a pre-filled HF cache with HF_HUB_OFFLINE=1)"
            ) from e

    _prepare_for_inference(asr, model, cuda_graphs=cuda_graphs and device.type == "cuda")
    logger.info(
        "STT model %r loaded: %s, %.1fM params, %d Hz, on %s",
        model,
        type(asr).__name__,
        sum(p.numel() for p in asr.parameters()) / 1e6,
        asr.cfg.sample_rate,
        device,
    )
    return asr


def _restore(asr_cls: type[ASRModel], path: Path, device: torch.device) -> ASRModel:
    try:
        return asr_cls.restore_from(str(path), map_location=device)
    except Exception as e:
        raise ModelLoadError(f"could not restore STT model from {str(path)!r}: {one_line(e)}") from e


def decoding_config(asr: ASRModel, *, cuda_graphs: bool) -> DictConfig:
    """A copy of the model's decoding config for greedy batched label-looping decoding."""
    from omegaconf import open_dict

    cfg = copy.deepcopy(asr.cfg.decoding)
    with open_dict(cfg):
        cfg.strategy = "greedy_batch"
        cfg.greedy.loop_labels = True
        cfg.greedy.use_cuda_graph_decoder = cuda_graphs
        cfg.fused_batch_size = -1
        cfg.confidence_cfg = {
            "preserve_frame_confidence": True,
            "preserve_word_confidence": True,
            "exclude_blank": True,
            "aggregation": "min",
            "method_cfg": {"name": "max_prob"},
        }
    return cfg


def _prepare_for_inference(asr: ASRModel, model: str, *, cuda_graphs: bool) -> None:
    from nemo.collections.asr.models import EncDecHybridRNNTCTCModel, EncDecRNNTModel

    if not isinstance(asr, EncDecRNNTModel):
        raise ModelLoadError(
            f"STT model {model!r} is a {type(asr).__name__}; only transducer (RNNT/TDT) models are supported"
        )
    asr.eval()
    asr.preprocessor.featurizer.dither = 0.0
    asr.preprocessor.featurizer.pad_to = 0
    cfg = decoding_config(asr, cuda_graphs=cuda_graphs)
    if isinstance(asr, EncDecHybridRNNTCTCModel):
        asr.change_decoding_strategy(cfg, decoder_type="rnnt", verbose=False)
    else:
        asr.change_decoding_strategy(cfg, verbose=False)
