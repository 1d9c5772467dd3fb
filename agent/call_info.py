"""What identifies one call, whatever its transport: it labels the call's log records, its metrics and its
saved conversation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transport = Literal["embedded", "room", "phone"]


@dataclass(frozen=True)
class CallInfo:
    """`session_id`: the embedded peer's id, or the LiveKit job's id. `room` and `participant` (the caller's
    identity) are set in LiveKit rooms; the numbers only for phone calls (livekit-sip's `sip.*` attributes)."""

    session_id: str
    transport: Transport
    room: str | None = None
    participant: str | None = None
    caller_number: str | None = None
    trunk_number: str | None = None
    direction: Literal["inbound", "outbound"] | None = None
