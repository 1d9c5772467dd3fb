"""The one place where the voice pipeline is assembled; every transport builds its session here.

VAD (Silero) → Parakeet STT → end-of-turn detection (local v1-mini model) → Groq LLM (streamed) →
Chatterbox TTS (sentence chunks, early first fragment) → the transport's audio output.
Barge-in is VAD based and local: user speech pauses the agent at once; words confirm the interruption
(LLM stream and TTS work are cancelled, queued audio dropped); no words within the timeout resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit.agents import AgentSession, AgentStateChangedEvent, APIConnectOptions, ErrorEvent, inference, llm
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import chatterbox, parakeet

from . import logs, metrics
from .assistant import Assistant
from .call_info import CallInfo
from .conversations.recorder import record as record_conversation
from .llm_chain import Deadlines, LLMChain, build_llm
from .models import Models
from .settings import Settings

logger = logging.getLogger("voice_agent.session")


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


def build_session(settings: Settings, models: Models, call: CallInfo) -> AgentSession:
    """`call` says which call this is (its ids label logs, metrics and the saved conversation) and whether
    it is a phone call (`transport == "phone"`: the phone profile of turn taking)."""
    logs.bind(call)  # the records of this task and of those the session creates carry the call's ids
    phone = call.transport == "phone"
    chain = build_llm(settings)
    session: AgentSession = AgentSession(
        vad=models.vad,
        stt=parakeet.STT(engine=models.stt),
        llm=chain,
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
        conn_options=SessionConnectOptions(
            # the chain already tried every model: a retry would only double the caller's wait
            llm_conn_options=APIConnectOptions(max_retry=0, timeout=Deadlines.of(settings).backstop)
        ),
    )
    keep_going(session, chain, settings)
    metrics.observe(session, call)
    record_conversation(session, call, settings)  # saved as it happens (agent/conversations)
    return session


def keep_going(session: AgentSession, chain: LLMChain, settings: Settings) -> None:
    """A turn no model could answer gets a spoken apology instead of silence. The agent speaking also resets
    livekit-agents' count of consecutive failures, which would otherwise close the session after three."""
    owed = False  # a turn failed and nothing has been said since

    def on_error(ev: ErrorEvent) -> None:
        nonlocal owed
        if ev.error.type == "llm_error" and not ev.error.recoverable:
            logger.warning("no LLM answered the turn (%s): apologising", ev.error.error)
            owed = True

    def on_agent_state(ev: AgentStateChangedEvent) -> None:
        # The failure may come from a preemptive generation, before the turn is even committed: apologise once
        # the agent is back to listening without having answered, not at once (the turn would drop it).
        nonlocal owed
        if ev.new_state == "speaking":
            owed = False
        elif ev.new_state == "listening" and owed:
            owed = False
            with contextlib.suppress(RuntimeError):  # the session is closing
                session.say(settings.llm_apology)

    tasks: set[asyncio.Task[None]] = set()

    def on_close(_: object) -> None:
        task = asyncio.create_task(chain.aclose())
        tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(tasks.discard)

    session.on("error", on_error)
    session.on("agent_state_changed", on_agent_state)
    session.on("close", on_close)


def build_agent(
    settings: Settings, *, instructions: str | None = None, tools: list[llm.Tool | llm.Toolset] | None = None
) -> Assistant:
    return Assistant(
        instructions=instructions or settings.system_prompt,
        tools=tools or [],
        max_history_items=settings.max_history_items,
    )
