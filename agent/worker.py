"""LiveKit worker mode: register with a (self-hosted) LiveKit server, take dispatched rooms, run the session.

Jobs run as threads of this process (`JobExecutorType.THREAD`), so every call shares the one copy of the STT
and TTS engines loaded at startup: a job process per call would load the models once per call. Load reported
to the server is the larger of session occupancy and GPU memory use, so LiveKit routes new rooms to the
replica with free GPU capacity; at capacity the worker declines, and on SIGTERM it drains. A model engine
that cannot serve makes the worker report itself full and its health port answer 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import torch
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from livekit.agents import (
    AgentServer,
    AutoSubscribe,
    JobContext,
    JobExecutorType,
    JobProcess,
    JobRequest,
    room_io,
)
from livekit.agents.utils import http_server

from . import logs, room_page
from .call_info import CallInfo
from .conversations.store import ConversationStore
from .metrics_engines import metrics_handler
from .models import Models
from .session import build_agent, build_session
from .settings import Settings
from .telephony.call import PhoneCall
from .telephony.phone import PhoneSession
from .telephony.redact import install as redact_phone_numbers
from .telephony.tools import phone_tools

logger = logging.getLogger("voice_agent.worker")

CALLER_TIMEOUT = 60.0  # a dispatched room whose caller never shows up (left while the agent was joining)


def gpu_memory_used(device: torch.device) -> float:
    """Fraction of the GPU's memory in use by every process on it (0 on CPU)."""
    if device.type != "cuda":
        return 0.0
    free, total = torch.cuda.mem_get_info(device)
    return 1.0 - free / total


def worker_load(active_sessions: int, settings: Settings, gpu_used: float, *, healthy: bool = True) -> float:
    """0..1; 1 means full: VOICE_AGENT_MAX_SESSIONS calls, GPU memory at its allowed fraction, or a model
    engine that cannot serve (the server then sends new rooms to other replicas)."""
    if not healthy:
        return 1.0
    sessions = active_sessions / settings.max_sessions
    memory = gpu_used / settings.max_gpu_memory_fraction
    return min(1.0, max(sessions, memory))


class VoiceAgentServer(AgentServer):
    """livekit-agents' worker, whose health port (`GET /` on VOICE_AGENT_WORKER_PORT) also answers 503, with
    the reason, while a model engine is unhealthy, so that an orchestrator's probe restarts the replica;
    `GET /engines` there shows each engine's health (and the conversation writer's) as JSON, and `GET /metrics`
    the Prometheus metrics.

    livekit-agents creates that HTTP server inside `run()` and starts it a few awaits later, with no hook in
    between; assigning it to `_http_server` is the moment to put a middleware in front of its routes."""

    def __init__(self, models: Models, conversations: ConversationStore | None = None, **options: Any) -> None:
        self._models = models
        self._conversations = conversations
        super().__init__(**options)

    @property  # type: ignore[override]
    def _http_server(self) -> http_server.HttpServer | None:
        return self.__dict__.get("_health_server")

    @_http_server.setter
    def _http_server(self, server: http_server.HttpServer | None) -> None:
        if server is not None:
            server.app.middlewares.append(_engines_first(self._models, self._conversations))
        self.__dict__["_health_server"] = server


def _engines_first(models: Models, conversations: ConversationStore | None) -> Middleware:
    metrics = metrics_handler(models)  # livekit-agents' own prometheus_port stays off: one port, one registry

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/engines":
            saved = {"conversations": conversations.health()} if conversations is not None else {}
            return web.json_response(models.health() | saved)
        if request.path == "/metrics":
            return await metrics(request)
        if request.path == "/" and (problems := models.unhealthy()):
            return web.Response(status=503, text="; ".join(problems))
        return await handler(request)

    return middleware


def build_server(
    settings: Settings, models: Models, conversations: ConversationStore | None = None
) -> AgentServer:
    device = models.stt.device

    def load(server: AgentServer) -> float:
        healthy = not models.unhealthy()
        return worker_load(len(server.active_jobs), settings, gpu_memory_used(device), healthy=healthy)

    server = VoiceAgentServer(
        models,
        conversations,
        job_executor_type=JobExecutorType.THREAD,
        # full exactly at load 1.0 (see worker_load), in dev mode too
        load_threshold=1.0,
        # idle job threads are cheap; one per session slot keeps livekit's per-job load estimate honest
        num_idle_processes=settings.max_sessions,
        drain_timeout=round(settings.drain_timeout),
        port=settings.worker_port,
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else None,
        setup_fnc=lambda proc: attach_models(proc, models),
        load_fnc=load,
    )

    async def on_request(request: JobRequest) -> None:
        if load(server) >= 1.0:
            logger.info("declining room %s: at capacity", request.room.name)
            await request.reject()
            return
        await request.accept(name="Voice agent", identity=f"agent-{request.job.id}")

    @server.rtc_session(agent_name=settings.agent_name, on_request=on_request)
    async def entrypoint(ctx: JobContext) -> None:
        await run_job(ctx, settings)

    return server


def attach_models(proc: JobProcess, models: Models) -> None:
    """Prewarm of a job thread: the models are already loaded (once, before registering); share them.
    By now livekit-agents has set up the process's log handlers: keep phone numbers out of them."""
    proc.userdata["models"] = models
    logs.install_call_fields()  # before the redaction, which then masks numbers in the room and identity too
    redact_phone_numbers()


async def run_job(ctx: JobContext, settings: Settings) -> None:
    models: Models = ctx.proc.userdata["models"]
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    try:  # the caller: a browser, or livekit-sip's participant for a phone call
        caller = await asyncio.wait_for(ctx.wait_for_participant(), CALLER_TIMEOUT)
    except TimeoutError:
        ctx.shutdown(reason="nobody joined the room")
        return
    call = PhoneCall.of(caller)
    info = CallInfo(
        session_id=ctx.job.id,
        transport="room" if call is None else "phone",
        room=ctx.room.name,
        participant=caller.identity,
        caller_number=call.caller_number or None if call else None,
        trunk_number=call.trunk_number or None if call else None,
        direction=("inbound" if call.inbound else "outbound") if call else None,
    )
    session = build_session(settings, models, info)
    # the job (and its capacity) ends with the session, not when the server closes the empty room later;
    # RoomIO closes the session when the caller leaves (or hangs up)
    session.on("close", lambda ev: ctx.shutdown(reason=f"session closed: {ev.reason}"))
    options = room_io.RoomOptions(participant_identity=caller.identity)
    if call is None:
        room_page.attach(ctx.room, session, caller.identity, settings)  # latencies, instructions panel
        await session.start(agent=build_agent(settings), room=ctx.room, room_options=options)
        logger.info("session started in room %s", ctx.room.name)
        return
    # the STT hears the phone line's band, not the room's 48 kHz Opus
    options.audio_input = room_io.AudioInputOptions(sample_rate=settings.phone_sample_rate)
    agent = build_agent(
        settings, instructions=call.instructions(settings.system_prompt), tools=phone_tools(settings, call)
    )
    await session.start(agent=agent, room=ctx.room, room_options=options)
    logger.info("session started in room %s", ctx.room.name)
    await PhoneSession(ctx, session, call, settings).run()
