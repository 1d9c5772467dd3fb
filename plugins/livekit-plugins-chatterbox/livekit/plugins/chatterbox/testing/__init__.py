"""Random-weight Chatterbox models for tests, CPU plumbing and GPU benchmarks (`synthetic-*` names).

The runtime modules of the plugin never import this package: an application that offers synthetic models
loads them through `testing.load_engine` (or hands `testing.load_model`'s model to a ChatterboxEngine).
"""

from __future__ import annotations

from typing import Any, get_args

from ..engine import ChatterboxEngine
from ..engine import load_engine as _load_engine
from ..loading import (
    LoadedModel,
    ModelLoadError,
    cast_t3,
    one_line,
    require_chatterbox,
    resolve_device,
    resolve_dtype,
)
from ..log import logger
from .builders import (
    NAMES,
    PREFIX,
    TOKENS_PER_CHAR,
    SyntheticModels,
    build,
    reference_clip,
    t3_config,
    unknown_model,
)

__all__ = [
    "NAMES",
    "TOKENS_PER_CHAR",
    "SyntheticModels",
    "build",
    "load_engine",
    "load_model",
    "reference_clip",
    "t3_config",
]


def load_model(model: str, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Blocking: build the random-weight model `model` (synthetic-tiny, ...) on `device`. Raises ModelLoadError."""
    if model not in get_args(SyntheticModels):
        raise unknown_model(model)
    dev = resolve_device(device)
    t3_dtype = resolve_dtype(dtype, dev)
    require_chatterbox()
    try:
        loaded = build(model.removeprefix(PREFIX), dev)
        cast_t3(loaded, t3_dtype)
    except Exception as e:
        raise ModelLoadError(f"cannot build Chatterbox model {model!r} on {dev}: {one_line(e)}") from e
    logger.warning(
        "Chatterbox model %r has RANDOM weights: audio is noise, for plumbing/benchmarks only", model
    )
    return loaded


def load_engine(model: str, device: str = "auto", dtype: str = "float32", **options: Any) -> ChatterboxEngine:
    """The process-wide engine (engine.load_engine) of a synthetic model; options as there."""
    return _load_engine(model, device, dtype, loader=load_model, **options)
