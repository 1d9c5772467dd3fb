"""The testing subpackage: random-weight models that stop by their own logits; the runtime never imports it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from chatterbox_helpers import expected_seconds
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox.testing.budget import LengthBudgetT3


def test_the_runtime_modules_do_not_import_the_testing_package() -> None:
    code = (
        "import sys; import livekit.plugins.chatterbox as c; import livekit.plugins.chatterbox.tts; "
        "print([m for m in sys.modules if m.startswith('livekit.plugins.chatterbox.testing')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


async def test_the_synthetic_t3_ends_utterances_at_its_text_budget(
    engine: chatterbox.ChatterboxEngine,
) -> None:
    """The engine's decode path has no synthetic branch: the model's own stop token ends each utterance."""
    assert isinstance(engine.model.tts.t3, LengthBudgetT3)
    before = engine.stats.tokens
    lengths = []
    for text in ("Hi.", "A somewhat longer sentence than that one."):
        pcm = np.frombuffer(b"".join([c async for c in engine.synthesize(text)]), dtype=np.int16)
        assert len(pcm) / 24000 == pytest.approx(expected_seconds(text))
        lengths.append(len(pcm))
    assert lengths[1] > 5 * lengths[0]
    assert engine.stats.tokens - before == sum(lengths) // 960  # every sampled token was a speech code
