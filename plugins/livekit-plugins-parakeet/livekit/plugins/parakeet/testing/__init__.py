"""For tests and benchmarks, never imported by the runtime modules: random-weight models with the architecture
of the published ones (built into ``.nemo`` files, then loaded like any local checkpoint) and speech-like
audio."""

from .audio import pad, speech_like
from .models import (
    CACHE_DIR_ENV,
    SYNTHETIC_MODELS,
    SYNTHETIC_WORD,
    build_synthetic_model,
    ensure_synthetic_model,
)

__all__ = [
    "CACHE_DIR_ENV",
    "SYNTHETIC_MODELS",
    "SYNTHETIC_WORD",
    "build_synthetic_model",
    "ensure_synthetic_model",
    "pad",
    "speech_like",
]
