"""The one place where the voice pipeline is assembled; every transport builds its session here.

VAD (Silero) → Parakeet STT → end-of-turn detection (local v1-mini model) → Groq LLM (streamed) →
Chatterbox TTS (sentence chunks, early first fragment) → the transport's audio output.
Barge-in is VAD based and local: user speech pauses the agent at once; words confirm the interruption
(LLM stream and TTS work are cancelled, queued audio dropped); no words within the timeout resume it.
"""

from __future__ import annotations

from livekit.agents import AgentSession, inference, llm
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import chatterbox, groq, parakeet

from .assistant import Assistant
from .models import Models
from .settings import Settings


def build_llm(settings: Settings) -> groq.LLM:
    # Self-hosted OpenAI-compatible servers usually take any key; Groq's is checked at startup.
    key = settings.groq_api_key.get_secret_value() if settings.groq_api_key else "not-needed"
    return groq.LLM(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=key,
        temperature=settings.llm_temperature,
    )


def turn_handling(settings: Settings, *, phone: bool = False) -> TurnHandlingOptions:
    """Phone lines add delay and line noise: a phone call waits a little longer for the end of a turn and
    for speech that interrupts (VOICE_AGENT_PHONE_MIN_ENDPOINTING_DELAY / _MIN_INTERRUPTION_DURATION)."""
    return {
        # never the cloud model: v1-mini runs in-process
        "turn_detection": inference.TurnDetector(version="v1-mini")
        if settings.turn_detection == "model"
        else "vad",
        "endpointing": {
            "min_delay": settings.phone_min_endpointing_delay if phone else settings.min_endpointing_delay,
            "max_delay": settings.max_endpointing_delay,
        },
        "interruption": {
            "mode": "vad",  # the adaptive detector is a cloud service
            "min_duration": settings.phone_min_interruption_duration
            if phone
            else settings.min_interruption_duration,
            "resume_false_interruption": True,
            "false_interruption_timeout": settings.false_interruption_timeout,
        },
    }


def build_session(settings: Settings, models: Models, *, phone: bool = False) -> AgentSession:
    return AgentSession(
        vad=models.vad,
        stt=parakeet.STT(engine=models.stt),
        llm=build_llm(settings),
        tts=chatterbox.TTS(
            engine=models.tts,
            voice=str(settings.tts_voice) if settings.tts_voice else None,
            exaggeration=settings.tts_exaggeration,
            cfg_weight=settings.tts_cfg_weight,
            temperature=settings.tts_temperature,
            watermark=settings.tts_watermark,
            chunk_tokens=settings.tts_chunk_tokens,
            normalize_text=settings.tts_normalize_text,
            first_fragment_min_words=settings.first_fragment_min_words,
        ),
        turn_handling=turn_handling(settings, phone=phone),
        aec_warmup_duration=settings.aec_warmup_duration or None,
        # on the phone a silent caller is asked whether they are there, then hung up on (telephony.phone)
        user_away_timeout=settings.caller_silence_timeout if phone else None,
    )


def build_agent(
    settings: Settings, *, instructions: str | None = None, tools: list[llm.Tool | llm.Toolset] | None = None
) -> Assistant:
    return Assistant(instructions=instructions or settings.system_prompt, tools=tools or [])
