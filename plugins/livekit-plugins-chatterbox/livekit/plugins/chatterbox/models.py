"""Model names and defaults."""

from __future__ import annotations

from typing import Literal

TTSModels = Literal["ResembleAI/chatterbox", "ResembleAI/chatterbox-turbo"]
"""Published checkpoints; any other Hugging Face repo id or a local checkpoint directory loads too."""
DEFAULT_MODEL: TTSModels = "ResembleAI/chatterbox"

Variant = Literal["original", "turbo"]
"""original: Llama T3 with CFG and a 10-step flow; turbo: GPT-2 T3 without CFG and a meanflow S3Gen."""

SAMPLE_RATE = 24000
"""S3Gen's output rate."""
DEFAULT_CHUNK_TOKENS = (20, 40, 80)
"""Speech tokens (40 ms each) per chunk step: the first, the second, ...; the last size repeats."""
