"""Model names and defaults, as livekit's own plugins declare them."""

from __future__ import annotations

from typing import Literal

STTModels = Literal[
    # offline-trained transducers: buffered streaming
    "nvidia/parakeet-tdt-0.6b-v2",
    "nvidia/parakeet-tdt-0.6b-v3",
    "nvidia/parakeet-tdt-1.1b",
    "nvidia/parakeet-rnnt-0.6b",
    "nvidia/parakeet-rnnt-1.1b",
    "nvidia/parakeet-tdt_ctc-110m",
    # cache-aware streaming FastConformers
    "nvidia/parakeet_realtime_eou_120m-v1",
    "nvidia/nemotron-speech-streaming-en-0.6b",
]
"""Published NeMo transducer checkpoints the plugin runs (any RNNT/TDT `.nemo` file works too)."""

STTDtypes = Literal["float32", "bfloat16", "float16"]

DEFAULT_MODEL: STTModels = "nvidia/parakeet-tdt-0.6b-v2"
DEFAULT_DEVICE = "auto"
DEFAULT_DTYPE: STTDtypes = "float32"

END_OF_UTTERANCE_TOKENS = ("<EOU>", "<EOB>")
"""parakeet_realtime_eou emits <EOU> at the end of each utterance and <EOB> at a backchannel's end; they end an
utterance and never appear in text"""
