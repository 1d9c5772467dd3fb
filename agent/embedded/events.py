"""Session events → JSON messages for the web page: on the peer's data channel in embedded mode, as data
packets to the caller in a room (agent/room_page.py).

Messages (one JSON object each):
  {"type": "agent_state", "state": "listening" | "thinking" | "speaking" | ...}
  {"type": "user_state", "state": "speaking" | "listening" | "away"}
  {"type": "transcript", "role": "user" | "agent", "text": str, "final": bool, "interrupted"?: bool}
      embedded only (a room has livekit-agents' own `lk.transcription` streams); the agent's partial text
      grows word by word in step with the audio played (TranscriptSynchronizer), and its final text is
      what was heard, cut where the caller interrupted
  {"type": "reply_end", "interrupted": bool}   in a room, once an agent reply is over
  {"type": "metrics", "role": "user" | "assistant", ...per-turn latencies in seconds...}
  {"type": "false_interruption", "resumed": bool}
  {"type": "error", "message": str, "source": "llm" | "stt" | "tts"}   (never the exception text)
Replies to what the page sends: agent/live_instructions.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice import events, io

logger = logging.getLogger("voice_agent.embedded")

Send = Callable[[dict[str, Any]], None]

_TURN_METRICS = (
    "transcription_delay",
    "end_of_turn_delay",
    "llm_node_ttft",
    "tts_node_ttfb",
    "e2e_latency",
)


class AgentTranscriptOutput(io.TextOutput):
    """Streams the agent's reply text as it arrives (behind a TranscriptSynchronizer: as it is spoken); the
    final text comes with the chat item (`end_reply`)."""

    def __init__(self, send: Send) -> None:
        super().__init__(label="data-channel", next_in_chain=None)
        self._send = send
        self._text = ""
        self._ended = False

    async def capture_text(self, text: str) -> None:
        if self._ended:
            return
        self._text += text
        self._send({"type": "transcript", "role": "agent", "text": self._text, "final": False})

    def flush(self) -> None:
        self._text = ""
        self._ended = False

    def end_reply(self) -> None:
        """The reply's final text has been sent: the synchronizer's last words, which can trail the chat item
        by a moment, would show after it as a new line."""
        self._ended = bool(self._text)


def relay_session_events(
    session: AgentSession, send: Send, transcript: AgentTranscriptOutput | None = None
) -> None:
    """With `transcript` (embedded mode) transcripts go out too; without (a room), `reply_end` marks
    interrupted replies."""

    def on_agent_state(ev: events.AgentStateChangedEvent) -> None:
        send({"type": "agent_state", "state": ev.new_state})

    def on_user_state(ev: events.UserStateChangedEvent) -> None:
        send({"type": "user_state", "state": ev.new_state})

    def on_user_transcript(ev: events.UserInputTranscribedEvent) -> None:
        if transcript is not None:
            send({"type": "transcript", "role": "user", "text": ev.transcript, "final": ev.is_final})

    def on_item(ev: events.ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        metrics = {k: v for k, v in (item.metrics or {}).items() if k in _TURN_METRICS}
        if metrics:
            send({"type": "metrics", "role": item.role, **metrics})
        if item.role != "assistant":
            return  # user text was already sent as it was transcribed
        if transcript is None:
            send({"type": "reply_end", "interrupted": item.interrupted})
            return
        transcript.end_reply()
        send(
            {
                "type": "transcript",
                "role": "agent",
                "text": item.text_content or "",
                "final": True,
                "interrupted": item.interrupted,
            }
        )

    def on_false_interruption(ev: events.AgentFalseInterruptionEvent) -> None:
        send({"type": "false_interruption", "resumed": ev.resumed})

    def on_error(ev: events.ErrorEvent) -> None:
        # what failed, never the exception's text (it can name hosts, keys' owners, file paths): that is logged
        source = getattr(ev.error, "type", "error").removesuffix("_error")
        send({"type": "error", "message": f"the agent's {source} failed for this turn", "source": source})

    session.on("agent_state_changed", on_agent_state)
    session.on("user_state_changed", on_user_state)
    session.on("user_input_transcribed", on_user_transcript)
    session.on("conversation_item_added", on_item)
    session.on("agent_false_interruption", on_false_interruption)
    session.on("error", on_error)


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)
