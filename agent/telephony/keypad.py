"""Key presses on a call (RFC 2833/4733 events, which livekit-sip turns into `sip_dtmf_received`) become a
user turn: digits are collected until `#` or until no key follows within the digit timeout, then the agent
stops talking and answers the entry, e.g. "The caller pressed on the keypad: 1 2" for a menu or an
account number. The instructions can tell the model what the entries mean."""

from __future__ import annotations

import logging

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.utils.aio.debounce import Debounced

logger = logging.getLogger("voice_agent.telephony")

TERMINATOR = "#"
ENTRY_PREFIX = "The caller pressed on the keypad:"


def entry_text(digits: list[str]) -> str:
    return f"{ENTRY_PREFIX} {' '.join(digits)}"


class Keypad:
    """Listens to one caller's key presses in `room` for the life of `session`."""

    def __init__(self, session: AgentSession, room: rtc.Room, caller: str, digit_timeout: float) -> None:
        self._session = session
        self._room = room
        self._caller = caller
        self._digits: list[str] = []
        self._submit = Debounced(self._submit_entry, digit_timeout)
        room.on("sip_dtmf_received", self._on_key)
        session.on("close", lambda _: self.close())

    def close(self) -> None:
        self._room.off("sip_dtmf_received", self._on_key)
        self._submit.cancel()

    def _on_key(self, ev: rtc.SipDTMF) -> None:
        if ev.participant is None or ev.participant.identity != self._caller:
            return
        if ev.digit == TERMINATOR:
            self._submit.run()
            return
        self._digits.append(ev.digit)
        self._submit.schedule()

    async def _submit_entry(self) -> None:
        digits, self._digits = self._digits, []
        if not digits:
            return
        logger.info("keypad entry of %d keys", len(digits))  # the keys themselves may be an account number
        self._session.interrupt()
        self._session.generate_reply(user_input=entry_text(digits))
