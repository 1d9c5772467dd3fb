"""Local Resemble AI Chatterbox text-to-speech for LiveKit Agents.

One ChatterboxEngine per model and device serves every session of the process from its own thread; TTS
instances are lightweight per-session front ends. See the README for installation (chatterbox-tts goes in with
--no-deps).
"""

from livekit.agents import Plugin

from .engine import (
    DEFAULT_CHUNK_TOKENS,
    ChatterboxEngine,
    EngineStats,
    SynthesisError,
    SynthesisHandle,
    load_engine,
)
from .log import logger
from .models import ModelLoadError
from .normalize import normalize_for_speech
from .tts import TTS, SynthesizeStream
from .version import __version__

__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "TTS",
    "ChatterboxEngine",
    "EngineStats",
    "ModelLoadError",
    "SynthesisError",
    "SynthesisHandle",
    "SynthesizeStream",
    "__version__",
    "load_engine",
    "normalize_for_speech",
]


class ChatterboxPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(ChatterboxPlugin())
