"""Local Resemble AI Chatterbox text-to-speech for LiveKit Agents.

One ChatterboxEngine per model and device serves every session of the process from its own thread; TTS
instances are lightweight per-session front ends. See the README for installation (chatterbox-tts goes in with
--no-deps). Random-weight models for tests and benchmarks live in `livekit.plugins.chatterbox.testing`.
"""

from livekit.agents import Plugin

from .engine import ChatterboxEngine, load_engine
from .handle import SynthesisError, SynthesisHandle
from .health import EngineHealth
from .jobs import EngineStats
from .loading import LoadedModel, ModelLoadError, load_model
from .log import logger
from .models import DEFAULT_CHUNK_TOKENS, DEFAULT_MODEL, SAMPLE_RATE, TTSModels
from .normalize import normalize_for_speech
from .steps import SynthesisSteps
from .tts import TTS, SynthesizeStream
from .version import __version__

__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_MODEL",
    "SAMPLE_RATE",
    "TTS",
    "ChatterboxEngine",
    "EngineHealth",
    "EngineStats",
    "LoadedModel",
    "ModelLoadError",
    "SynthesisError",
    "SynthesisHandle",
    "SynthesisSteps",
    "SynthesizeStream",
    "TTSModels",
    "__version__",
    "load_engine",
    "load_model",
    "normalize_for_speech",
]


class ChatterboxPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(ChatterboxPlugin())
