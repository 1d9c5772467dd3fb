"""A phone call in a room: livekit-sip's participant (kind SIP) and what its `sip.*` attributes say about the
call (caller and trunk numbers, status, direction)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from livekit import rtc

SIP_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
CALL_STATUS = "sip.callStatus"


def masked(number: str) -> str:
    """A phone number fit for INFO logs: its last two digits only."""
    return "*" * max(0, len(number) - 2) + number[-2:] if number else "(hidden)"


@dataclass(frozen=True)
class PhoneCall:
    participant: rtc.RemoteParticipant

    @classmethod
    def of(cls, participant: rtc.RemoteParticipant) -> PhoneCall | None:
        return cls(participant) if participant.kind == SIP_KIND else None

    @property
    def caller_number(self) -> str:
        """The other end: the caller of an inbound call, the callee of an outbound one ("" when hidden)."""
        return self.participant.attributes.get("sip.phoneNumber", "")

    @property
    def trunk_number(self) -> str:
        return self.participant.attributes.get("sip.trunkPhoneNumber", "")

    @property
    def status(self) -> str:
        return self.participant.attributes.get(CALL_STATUS, "")

    @property
    def inbound(self) -> bool:
        return "sip.ruleID" in self.participant.attributes  # only dispatch rules (inbound calls) set it

    def instructions(self, template: str) -> str:
        """The system prompt with `{caller_number}` and `{trunk_number}` filled in (other braces untouched)."""
        return template.replace("{caller_number}", self.caller_number or "unknown").replace(
            "{trunk_number}", self.trunk_number or "unknown"
        )

    async def wait_until_active(self, room: rtc.Room, timeout: float) -> bool:
        """True once the call is answered (`sip.callStatus` = active); False if it ends or `timeout` passes.
        livekit-sip answers an inbound call only after the agent subscribed to the caller's track."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def check(*_: object) -> None:
            if not done.done() and self.status in ("active", "hangup"):
                done.set_result(self.status == "active")

        def gone(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == self.participant.identity and not done.done():
                done.set_result(False)

        room.on("participant_attributes_changed", check)
        room.on("participant_disconnected", gone)
        try:
            check()
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return False
        finally:
            room.off("participant_attributes_changed", check)
            room.off("participant_disconnected", gone)
