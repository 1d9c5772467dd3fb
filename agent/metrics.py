"""Prometheus metrics of the calls, fed by each session's events (`observe`, hooked in `build_session`); the
model engines' gauges are read at scrape time (agent/metrics_engines.py).

Everything lives on prometheus_client's default registry, which is thread-safe: the worker's jobs are threads
of one process. The only label is the call's transport (embedded, room, phone): never a call's ids.

The stage latencies come from `conversation_item_added`, each chat message's `metrics` (livekit-agents 1.8's
per-turn report), not from the deprecated `metrics_collected`: only the messages carry `e2e_latency`, and the
user's speech onset that a barge-in's stop time is measured from.
"""

from __future__ import annotations

from typing import get_args

from livekit.agents import AgentSession, llm
from livekit.agents.voice import events
from prometheus_client import Counter, Gauge, Histogram

from .call_info import CallInfo, Transport

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

# ChatMessage.metrics key -> the `stage` label
STAGES = {
    "transcription_delay": "transcription",
    "end_of_turn_delay": "end_of_turn",
    "llm_node_ttft": "llm_ttft",
    "tts_node_ttfb": "tts_ttfb",
    "e2e_latency": "e2e",
}

TURN_LATENCY = Histogram(
    "voice_agent_turn_latency_seconds",
    "Per-turn latency by stage: transcription (end of user speech to final transcript), end_of_turn (end "
    "of speech to the turn's commit), llm_ttft, tts_ttfb, e2e (end of user speech to the agent's audio)",
    ["stage", "transport"],
    buckets=LATENCY_BUCKETS,
)
SESSIONS = Counter("voice_agent_sessions", "Sessions started", ["transport"])
ACTIVE_SESSIONS = Gauge("voice_agent_active_sessions", "Sessions running now", ["transport"])
ERRORS = Counter(
    "voice_agent_errors",
    "Errors the sessions reported, by kind (llm, stt, tts, ...) and whether the session recovered",
    ["kind", "recoverable", "transport"],
)
BARGE_INS = Counter(
    "voice_agent_barge_ins",
    "Times the agent's speech was stopped by the user speaking over it",
    ["transport"],
)
BARGE_IN_STOP = Histogram(
    "voice_agent_barge_in_stop_seconds",
    "Server-side stop time of a barge-in: from the onset of the user's speech to the agent's audio being "
    "paused (barge-ins whose speech became a user turn; false interruptions have no onset to measure from)",
    ["transport"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0),
)
FALSE_INTERRUPTIONS = Counter(
    "voice_agent_false_interruptions",
    "Barge-ins with no words within the timeout: the agent resumed its speech",
    ["transport"],
)

for _transport in get_args(Transport):  # every series exists from the start: rate() sees the first event
    for _metric in (SESSIONS, ACTIVE_SESSIONS, BARGE_INS, BARGE_IN_STOP, FALSE_INTERRUPTIONS):
        _metric.labels(_transport)
    for _kind in ("llm", "stt", "tts"):
        ERRORS.labels(_kind, "false", _transport)

MAX_STOP_SECONDS = 30.0  # a longer "stop time" pairs a barge-in with the wrong turn: not observed


def observe(session: AgentSession, call: CallInfo) -> None:
    """Feed this process's metrics from `session`'s events, from its start to its close."""
    _CallMetrics(call.transport).attach(session)


class _CallMetrics:
    def __init__(self, transport: str) -> None:
        self._transport = transport
        self._started = False
        self._closed = False
        self._user_speaking = False
        self._speaking_since = 0.0  # when the agent last started speaking
        self._stopped_at: float | None = None  # a barge-in waiting for the user turn that tells its onset

    def attach(self, session: AgentSession) -> None:
        session.on("agent_state_changed", self._on_agent_state)
        session.on("user_state_changed", self._on_user_state)
        session.on("conversation_item_added", self._on_item)
        session.on("agent_false_interruption", self._on_false_interruption)
        session.on("error", self._on_error)
        session.on("close", self._on_close)

    def _on_agent_state(self, ev: events.AgentStateChangedEvent) -> None:
        # "initializing" ends once the session has started, the one state after which it emits "close"
        if ev.old_state == "initializing" and not self._started:
            self._started = True
            SESSIONS.labels(self._transport).inc()
            ACTIVE_SESSIONS.labels(self._transport).inc()
        if ev.new_state == "speaking":
            self._speaking_since = ev.created_at
        elif ev.old_state == "speaking" and self._user_speaking:
            # livekit-agents leaves "speaking" as it pauses (or clears) the audio output for the user
            BARGE_INS.labels(self._transport).inc()
            self._stopped_at = ev.created_at

    def _on_user_state(self, ev: events.UserStateChangedEvent) -> None:
        self._user_speaking = ev.new_state == "speaking"

    def _on_item(self, ev: events.ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        report = item.metrics or {}
        for key, stage in STAGES.items():
            value = report.get(key)
            if isinstance(value, int | float) and value >= 0:
                TURN_LATENCY.labels(stage, self._transport).observe(value)
        if item.role == "user" and self._stopped_at is not None:
            onset = report.get("started_speaking_at")
            if isinstance(onset, int | float) and onset <= self._stopped_at:
                # speech that began before the agent spoke only counts from when it did
                stop = self._stopped_at - max(onset, self._speaking_since)
                if stop <= MAX_STOP_SECONDS:
                    BARGE_IN_STOP.labels(self._transport).observe(stop)
            self._stopped_at = None

    def _on_false_interruption(self, _: events.AgentFalseInterruptionEvent) -> None:
        FALSE_INTERRUPTIONS.labels(self._transport).inc()
        self._stopped_at = None  # no user turn will follow it

    def _on_error(self, ev: events.ErrorEvent) -> None:
        kind = str(getattr(ev.error, "type", "unknown")).removesuffix("_error")
        recoverable = "true" if getattr(ev.error, "recoverable", False) else "false"
        ERRORS.labels(kind, recoverable, self._transport).inc()

    def _on_close(self, _: events.CloseEvent) -> None:
        if self._started and not self._closed:
            self._closed = True
            ACTIVE_SESSIONS.labels(self._transport).dec()
