"""The web page's side channel in a LiveKit room, so the page works as in embedded mode.

Transcripts and the agent's state travel as livekit-agents publishes them (`lk.transcription` text streams,
synchronized with the audio by RoomIO; the `lk.agent.state` attribute). What else the page shows (per-turn
latencies, interrupted replies, false interruptions, errors: agent/embedded/events.py) goes to the caller
only, as reliable data packets on topic `TOPIC`. The caller, and nobody else in the room, may change the
agent's instructions with the RPC method `INSTRUCTIONS_METHOD` (payload {"text": str}; agent/live_instructions.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession

from .embedded.events import encode, relay_session_events
from .live_instructions import Rejected, apply, parse_message
from .settings import Settings

logger = logging.getLogger("voice_agent.room_page")

TOPIC = "voice-agent.events"
INSTRUCTIONS_METHOD = "voice-agent.instructions"


def attach(room: rtc.Room, session: AgentSession, caller: str, settings: Settings) -> None:
    """Serve the page of participant `caller` for as long as `session` runs."""
    publisher = _Publisher(room, caller)
    relay_session_events(session, publisher.send)

    async def on_instructions(data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != caller:
            logger.warning(
                "refused an instructions change from %s, who is not this agent's caller", data.caller_identity
            )
            raise rtc.RpcError(
                rtc.RpcError.ErrorCode.APPLICATION_ERROR, "only the caller this agent serves may change it"
            )
        try:
            await apply(session, parse_message(data.payload, settings), settings)
        except Rejected as e:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, str(e)) from None
        return json.dumps({"ok": True})

    room.local_participant.register_rpc_method(INSTRUCTIONS_METHOD, on_instructions)

    def on_close(_: object) -> None:
        publisher.close()
        if room.isconnected():
            room.local_participant.unregister_rpc_method(INSTRUCTIONS_METHOD)

    session.on("close", on_close)


class _Publisher:
    """Messages to one participant, in order, from one task (a failed packet is logged, the rest go on)."""

    def __init__(self, room: rtc.Room, identity: str) -> None:
        self._room = room
        self._identity = identity
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self._task = asyncio.create_task(self._run())

    def send(self, message: dict[str, Any]) -> None:
        if self._queue.full():  # the caller is not reading: drop, never block the session
            return
        self._queue.put_nowait(encode(message))

    def close(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            data = await self._queue.get()
            try:
                await self._room.local_participant.publish_data(
                    data, reliable=True, destination_identities=[self._identity], topic=TOPIC
                )
            except Exception as e:  # noqa: BLE001  the room is going away, or a transient signalling error
                logger.debug("could not send a page event: %r", e)
