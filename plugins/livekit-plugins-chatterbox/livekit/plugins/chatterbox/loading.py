"""Loading Chatterbox: a Hugging Face repo id or a local checkpoint directory, on a device and dtype."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .log import logger
from .models import DEFAULT_MODEL, Variant

if TYPE_CHECKING:
    from chatterbox.tts import ChatterboxTTS
    from chatterbox.tts_turbo import ChatterboxTurboTTS

# the T3 weights file tells the two checkpoint layouts apart (as read by `from_local`)
_ORIGINAL_T3 = "t3_cfg.safetensors"
_TURBO_T3 = "t3_turbo_v1.safetensors"
# fetched for a repo id: the weights of either layout, tokenizer files and the built-in voice
_HUB_PATTERNS = [
    "ve.safetensors",
    _ORIGINAL_T3,
    "s3gen.safetensors",
    _TURBO_T3,
    "s3gen_meanflow.safetensors",
    "*.json",
    "*.txt",
    "*.model",
    "conds.pt",
]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SYNTHETIC_PREFIX = "synthetic-"


class ModelLoadError(RuntimeError):
    """A Chatterbox model could not be loaded. The message is one line: what was tried, what to set."""


@dataclass
class LoadedModel:
    """A Chatterbox model ready for inference, and how the engine must drive it."""

    name: str
    variant: Variant
    tts: ChatterboxTTS | ChatterboxTurboTTS
    device: torch.device
    dtype: torch.dtype
    """dtype of T3 (the token language model); S3Gen and HiFT always run in float32."""
    n_cfm_timesteps: int | None = None
    """flow-matching steps of S3Gen; None keeps the variant's own default (10, or 2 for Turbo's meanflow)."""


def resolve_device(device: str) -> torch.device:
    """ "auto" picks CUDA when available; an explicit CUDA device must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ModelLoadError(f"invalid device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device {device!r} requested but CUDA is not available (torch {torch.__version__}): "
                "set device='auto' or 'cpu', or install a CUDA build of torch on a GPU machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use one of {', '.join(_DTYPES)}")
    if dtype != "float32" and device.type != "cuda":
        logger.warning("dtype %s only applies on CUDA; running on %s in float32", dtype, device)
        return torch.float32
    return _DTYPES[dtype]


def load_model(model: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Blocking: load `model` (a Hugging Face repo id or a checkpoint directory) on `device`.

    `dtype` applies to T3 on CUDA. Raises ModelLoadError on any failure.
    """
    if model.startswith(_SYNTHETIC_PREFIX):
        raise ModelLoadError(
            f"{model!r} is a random-weight test model: load it with livekit.plugins.chatterbox.testing"
        )
    dev = resolve_device(device)
    t3_dtype = resolve_dtype(dtype, dev)
    start = time.perf_counter()
    try:
        loaded = _load(model, dev)
        cast_t3(loaded, t3_dtype)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"cannot load Chatterbox model {model!r} on {dev}: {one_line(e)}") from e
    logger.info(
        "loaded Chatterbox model %r (%s) on %s, T3 in %s, in %.1f s",
        model,
        loaded.variant,
        dev,
        str(t3_dtype).removeprefix("torch."),
        time.perf_counter() - start,
    )
    return loaded


def cast_t3(model: LoadedModel, dtype: torch.dtype) -> None:
    """Run T3 (and the built-in voice's T3 conditionals) in `dtype`."""
    model.tts.t3.to(dtype=dtype)
    if model.tts.conds is not None:
        model.tts.conds.t3.to(dtype=dtype)
    model.dtype = dtype


def require_chatterbox() -> None:
    """Import chatterbox, or raise a ModelLoadError that says how to install it."""
    try:
        import chatterbox.tts  # noqa: F401
    except Exception as e:
        raise ModelLoadError(
            f"cannot import chatterbox ({one_line(e)}): install chatterbox-tts==0.1.7 with --no-deps and, "
            "on CPU-only torch, delete torchaudio/lib/*.so (see the livekit-plugins-chatterbox README)"
        ) from e


def one_line(e: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters of it."""
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first[:200]}" if first else type(e).__name__


def _load(model: str, device: torch.device) -> LoadedModel:
    path = Path(model).expanduser()
    if path.is_dir():
        return _from_dir(model, path, device)
    if _looks_like_path(model):
        raise ModelLoadError(
            f"Chatterbox checkpoint directory {model!r} does not exist: set the model to an existing "
            f"checkpoint directory or a Hugging Face repo id such as {DEFAULT_MODEL!r}"
        )

    from huggingface_hub import snapshot_download

    try:
        local_dir = snapshot_download(repo_id=model, allow_patterns=_HUB_PATTERNS)
    except Exception as e:
        raise ModelLoadError(
            f"cannot fetch Chatterbox model {model!r} from the Hugging Face hub ({one_line(e)}): check the "
            "repo id and network access (HF_HUB_OFFLINE, HF_TOKEN), or set the model to a local checkpoint "
            "directory"
        ) from e
    return _from_dir(model, Path(local_dir), device)


def _from_dir(model: str, path: Path, device: torch.device) -> LoadedModel:
    require_chatterbox()
    if (path / _TURBO_T3).is_file():
        try:
            from chatterbox.tts_turbo import ChatterboxTurboTTS
        except ImportError as e:
            raise ModelLoadError(
                f"{model!r} is a Chatterbox-Turbo checkpoint but the installed chatterbox-tts has no "
                "ChatterboxTurboTTS: install chatterbox-tts==0.1.7 (--no-deps)"
            ) from e
        return LoadedModel(
            model, "turbo", ChatterboxTurboTTS.from_local(path, str(device)), device, torch.float32
        )
    if (path / _ORIGINAL_T3).is_file():
        from chatterbox.tts import ChatterboxTTS

        return LoadedModel(
            model, "original", ChatterboxTTS.from_local(path, str(device)), device, torch.float32
        )
    raise ModelLoadError(
        f"{model!r} is not a Chatterbox checkpoint directory: expected {_ORIGINAL_T3} (or {_TURBO_T3}) "
        "with the s3gen, ve and tokenizer files next to it"
    )


def _looks_like_path(model: str) -> bool:
    # a repo id is "owner/name"
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
