"""The page's instructions panel: the caller replaces the agent's instructions during the call.

Only the caller of a session can reach it: in embedded mode over the data channel of their own peer
connection (whose offer passed the API token check), in a room through an RPC that the agent accepts from
the participant it serves only (agent/room_page.py). `VOICE_AGENT_LIVE_INSTRUCTIONS=false` turns it off;
`VOICE_AGENT_INSTRUCTIONS_MAX_CHARS` bounds the text.

Embedded data channel, page → agent:  {"type": "instructions", "id"?: int | str, "text": str}
                      agent → page:  {"type": "instructions", "id": ..., "ok": true}
                                     {"type": "instructions", "id": ..., "ok": false, "error": str}
Anything else the page sends is answered {"type": "error", "source": "channel", "message": str}; the call
goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession

from .settings import Settings

logger = logging.getLogger("voice_agent.instructions")

Send = Callable[[dict[str, Any]], None]


class Rejected(Exception):
    """Why a message or a change was refused; the text is safe to show the caller."""


def parse_message(data: str | bytes, settings: Settings) -> dict[str, Any]:
    """One JSON object from the page, bounded in size (the instructions plus room for the envelope)."""
    if len(data) > 4 * settings.instructions_max_chars + 1024:
        raise Rejected("the message is too large")
    try:
        message = json.loads(data)
    except ValueError:
        raise Rejected("the message is not valid JSON") from None
    if not isinstance(message, dict):
        raise Rejected("the message must be a JSON object")
    return message


def checked_instructions(message: dict[str, Any], settings: Settings) -> str:
    if not settings.live_instructions:
        raise Rejected("changing the agent's instructions during a call is turned off on this server")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Rejected('"text" must be a non-empty string')
    text = text.strip()
    if len(text) > settings.instructions_max_chars:
        raise Rejected(
            f"the instructions are {len(text)} characters long; at most {settings.instructions_max_chars} "
            "are allowed"
        )
    return text


async def apply(session: AgentSession, message: dict[str, Any], settings: Settings) -> None:
    """The agent's next reply follows the new instructions (the chat so far is kept)."""
    text = checked_instructions(message, settings)
    await session.current_agent.update_instructions(text)
    logger.info("the caller changed the agent's instructions (%d characters)", len(text))


class ChannelRequests:
    """Messages the page sends on the embedded data channel; each gets one reply on the same channel."""

    def __init__(self, settings: Settings, send: Send) -> None:
        self._settings = settings
        self._send = send
        self._tasks: set[asyncio.Task[None]] = set()

    def receive(self, data: str | bytes, session: AgentSession | None) -> None:
        task = asyncio.create_task(self._answer(data, session))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: str | bytes, session: AgentSession | None) -> None:
        try:
            message = parse_message(data, self._settings)
        except Rejected as e:
            self._send({"type": "error", "source": "channel", "message": str(e)})
            return
        kind = message.get("type")
        if kind != "instructions":
            self._send({"type": "error", "source": "channel", "message": f"unknown message type {kind!r}"})
            return
        request_id = message.get("id")
        reply: dict[str, Any] = {
            "type": "instructions",
            "id": request_id if isinstance(request_id, int | str) else None,
        }
        try:
            if session is None:
                raise Rejected("the call has not started yet")
            await apply(session, message, self._settings)
        except Rejected as e:
            self._send(reply | {"ok": False, "error": str(e)})
        except Exception:
            logger.exception("could not change the agent's instructions")
            self._send(reply | {"ok": False, "error": "the agent could not change its instructions"})
        else:
            self._send(reply | {"ok": True})
