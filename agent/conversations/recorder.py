"""Saves one call as it happens, from its session's events: the call's row when the session is built, each
user and agent message (with `interrupted` and its per-turn metrics) as livekit-agents adds it to the chat,
false interruptions, tool calls, and the end (time, reason) on close."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice import events

from ..call_info import CallInfo
from ..settings import Settings
from .database import Entry
from .store import ConversationStore, current

logger = logging.getLogger("voice_agent.conversations")

ROLES = {"user": "user", "assistant": "agent"}  # the page's names for the two sides


def record(session: AgentSession, call: CallInfo, settings: Settings) -> None:
    """Save `session`'s conversation in the process's store (`store.acquire`d at startup); none is open when
    recording is off (VOICE_AGENT_CONVERSATIONS_ENABLED=false) or in code that builds sessions on its own."""
    store = current(settings)
    if store is not None:
        _Recorder(store, call).attach(session)


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class _Recorder:
    def __init__(self, store: ConversationStore, call: CallInfo) -> None:
        self._store = store
        self._call = call
        self._seq = 0
        self._closed = False

    def attach(self, session: AgentSession) -> None:
        self._store.begin_call(self._call, datetime.now(UTC))
        session.on("conversation_item_added", self._on_item)
        session.on("agent_false_interruption", self._on_false_interruption)
        session.on("function_tools_executed", self._on_tools)
        session.on("close", self._on_close)

    def _add(self, at: float, kind: str, **fields: Any) -> None:
        self._store.add(
            Entry(call_id=self._call.session_id, seq=self._seq, at=_time(at), kind=kind, **fields)
        )
        self._seq += 1

    def _on_item(self, ev: events.ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ROLES:
            return
        self._add(
            item.created_at,
            "message",
            role=ROLES[item.role],
            text=item.text_content or "",
            interrupted=item.interrupted,
            data=dict(item.metrics),
        )

    def _on_false_interruption(self, ev: events.AgentFalseInterruptionEvent) -> None:
        self._add(ev.created_at, "false_interruption", data={"resumed": ev.resumed})

    def _on_tools(self, ev: events.FunctionToolsExecutedEvent) -> None:
        for call, output in ev.zipped():
            details = {"arguments": call.arguments, "output": output.output, "error": output.is_error}
            self._add(call.created_at, "tool_call", text=call.name, data=details)

    def _on_close(self, ev: events.CloseEvent) -> None:
        if not self._closed:
            self._closed = True
            reason = (
                ev.reason.value if ev.error is None else f"{ev.reason.value}: {type(ev.error.error).__name__}"
            )
            self._store.end_call(self._call.session_id, _time(ev.created_at), reason[:64])
