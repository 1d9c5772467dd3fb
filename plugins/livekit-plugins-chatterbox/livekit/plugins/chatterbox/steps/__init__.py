"""The model math: T3 token decoding (decoding), chunked S3Gen/HiFT vocoding (vocoder), and the step object
the scheduler calls (synthesis)."""

from .decoding import DecodeBatch, SamplingParams, Utterance
from .synthesis import SPEECH_CODES, SynthesisSteps
from .vocoder import ChunkVocoder, FlowInput

__all__ = [
    "SPEECH_CODES",
    "ChunkVocoder",
    "DecodeBatch",
    "FlowInput",
    "SamplingParams",
    "SynthesisSteps",
    "Utterance",
]
