"""The model engines one process loads once and every session shares."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import torch
from livekit.agents import vad
from livekit.plugins import chatterbox, parakeet, silero

from .errors import StartupError
from .settings import Settings

logger = logging.getLogger("voice_agent")


@dataclass(frozen=True)
class Models:
    vad: vad.VAD
    stt: parakeet.ParakeetEngine
    tts: chatterbox.ChatterboxEngine

    def health(self) -> dict[str, dict[str, object]]:
        """Each engine's health (alive, last step age, queue depth, consecutive failures, reason), for JSON."""
        return {
            "stt": self.stt.health().as_dict() | {"active_streams": self.stt.active_streams},
            "tts": self.tts.health().as_dict(),
        }

    def unhealthy(self) -> list[str]:
        """One line per engine that cannot serve calls now (empty when both can): /healthz answers 503 and a
        worker reports itself full while it is not empty, so no new call is sent here."""
        return [
            f"{name}: {health.reason}"
            for name, health in (("stt", self.stt.health()), ("tts", self.tts.health()))
            if not health.healthy
        ]

    def describe(self) -> dict[str, str]:
        return {
            "stt": self.stt.model_name,
            "tts": self.tts.model_name,
            "stt_device": str(self.stt.device),
            "tts_device": str(self.tts.device),
        }


def check_device(settings: Settings) -> None:
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise StartupError(
            f"VOICE_AGENT_DEVICE={settings.device} but torch sees no CUDA GPU "
            "(check the NVIDIA driver and that a CUDA build of torch is installed), "
            "or set VOICE_AGENT_DEVICE=auto to fall back to the CPU"
        )


def load_stt(settings: Settings) -> parakeet.ParakeetEngine:
    """The shared Parakeet engine with the STT settings (blocking). A `synthetic-*` model (random weights, for
    tests and benchmarks) is built into a cached .nemo file first, then loaded like any local one."""
    model = settings.stt_model
    try:
        if model.startswith("synthetic-"):
            from livekit.plugins.parakeet import testing

            model = str(testing.ensure_synthetic_model(model))
        return parakeet.load_engine(
            model,
            name=settings.stt_model,
            device=settings.device,
            dtype=settings.dtype,
            streaming=parakeet.StreamingConfig(
                left=settings.stt_left_context,
                chunk=settings.stt_chunk_size,
                right=settings.stt_right_context,
            ),
            att_context_size=settings.stt_att_context_size,
            max_batch_size=settings.stt_max_batch_size,
            max_wait=settings.stt_max_wait_ms / 1000,
            cuda_graphs=settings.stt_cuda_graphs,
        )
    except parakeet.ModelLoadError as e:
        raise StartupError(f"{e} (VOICE_AGENT_STT_MODEL, VOICE_AGENT_STT_*)") from e


async def load_models(settings: Settings) -> Models:
    """Load VAD, STT and TTS off the event loop; model problems become `StartupError`.

    One after the other: NeMo and Chatterbox both import transformers lazily, which is not thread-safe."""
    check_device(settings)

    def load_tts() -> chatterbox.ChatterboxEngine:
        load = chatterbox.load_engine
        if settings.tts_model.startswith("synthetic-"):  # random weights, for tests and benchmarks
            from livekit.plugins.chatterbox import testing

            load = testing.load_engine
        try:
            return load(settings.tts_model, device=settings.device, dtype=settings.dtype)
        except chatterbox.ModelLoadError as e:
            raise StartupError(f"{e} (VOICE_AGENT_TTS_MODEL)") from e

    def load_vad() -> vad.VAD:
        return silero.VAD.load(
            min_silence_duration=settings.vad_min_silence_duration,
            min_speech_duration=settings.vad_min_speech_duration,
            activation_threshold=settings.vad_activation_threshold,
        )

    if settings.tts_voice is not None and not settings.tts_voice.is_file():
        raise StartupError(f"VOICE_AGENT_TTS_VOICE={settings.tts_voice} is not a readable WAV file")

    def load_all() -> Models:
        return Models(vad=load_vad(), stt=load_stt(settings), tts=load_tts())

    return await asyncio.to_thread(load_all)
