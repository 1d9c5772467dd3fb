"""Local NVIDIA Parakeet (NeMo) speech-to-text for LiveKit Agents.

The model runs in-process in a shared `ParakeetEngine` (one per model, device and dtype); `STT` objects are
cheap per-session handles on it. See README.md for real weights, and `testing` for random-weight models.
"""

from livekit.agents import Plugin

from .engine import ParakeetEngine, load_engine
from .errors import EngineClosedError, EngineError
from .loading import ModelLoadError
from .log import logger
from .models import DEFAULT_MODEL, STTModels
from .results import EngineHealth, EngineStats, Transcript
from .steps import Steps
from .stream import EngineStream
from .streaming import StreamingConfig, StreamStats, StreamUpdate
from .stt import STT, SpeechStream
from .version import __version__

__all__ = [
    "DEFAULT_MODEL",
    "STT",
    "EngineClosedError",
    "EngineError",
    "EngineHealth",
    "EngineStats",
    "EngineStream",
    "ModelLoadError",
    "ParakeetEngine",
    "STTModels",
    "SpeechStream",
    "Steps",
    "StreamStats",
    "StreamUpdate",
    "StreamingConfig",
    "Transcript",
    "__version__",
    "load_engine",
]


class ParakeetPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(ParakeetPlugin())

# Cleanup docs of unexported modules
_module = dir()
NOT_IN_ALL = [m for m in _module if m not in __all__]

__pdoc__ = {}

for n in NOT_IN_ALL:
    __pdoc__[n] = False
