"""What a started session does differently when its caller is on the phone: wait until the call is answered,
greet first, take key presses, prompt a silent caller and then hang up, and end calls at the maximum
duration. Hanging up deletes the room, so livekit-sip sends BYE; a caller's BYE closes the session."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from livekit.agents import AgentSession, JobContext, UserStateChangedEvent

from ..settings import Settings
from .call import PhoneCall, masked
from .keypad import Keypad

logger = logging.getLogger("voice_agent.telephony")

ANSWER_TIMEOUT = 90.0  # outbound: ringing; inbound: livekit-sip answers once we subscribed
STILL_THERE_LINE = "Are you still there?"
SILENT_GOODBYE_LINE = "I can't hear you, so I'll end the call now. Goodbye."
TIME_LIMIT_LINE = "We have reached the time limit for this call. Thank you for calling, goodbye."


async def hang_up(ctx: JobContext, session: AgentSession, line: str) -> None:
    """Say `line` to the end, then end the call for everyone in the room."""
    with suppress(RuntimeError):  # the session may already be closing
        await session.say(line, allow_interruptions=False)
    await ctx.delete_room()
    ctx.shutdown(reason="the agent hung up")


class PhoneSession:
    def __init__(self, ctx: JobContext, session: AgentSession, call: PhoneCall, settings: Settings) -> None:
        self.ctx, self.session, self.call, self.settings = ctx, session, call, settings
        self._prompted = False
        self._tasks: set[asyncio.Task[None]] = set()
        Keypad(session, ctx.room, call.participant.identity, settings.dtmf_digit_timeout)
        session.on("user_state_changed", self._on_user_state)
        session.on("close", lambda _: self._cancel_tasks())

    async def run(self) -> None:
        logger.info(
            "%s phone call with %s in room %s",
            "inbound" if self.call.inbound else "outbound",
            masked(self.call.caller_number),
            self.ctx.room.name,
        )
        if not await self.call.wait_until_active(self.ctx.room, ANSWER_TIMEOUT):
            logger.info("the call in room %s was not answered", self.ctx.room.name)
            self.ctx.shutdown(reason="call not answered")
            return
        self._spawn(self._time_limit())
        if self.settings.phone_greeting:
            self.session.say(self.settings.phone_greeting)
        else:
            self.session.generate_reply(instructions="Greet the caller briefly and ask how you can help.")

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _time_limit(self) -> None:
        await asyncio.sleep(self.settings.max_call_duration)
        logger.info("call in room %s reached VOICE_AGENT_MAX_CALL_DURATION", self.ctx.room.name)
        await hang_up(self.ctx, self.session, TIME_LIMIT_LINE)

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        # "away": caller and agent both silent for VOICE_AGENT_CALLER_SILENCE_TIMEOUT
        if ev.new_state == "speaking":
            self._prompted = False
        elif ev.new_state == "away" and not self._prompted:
            self._prompted = True
            self.session.say(STILL_THERE_LINE)
            # back to "listening": the next "away" comes a full timeout after the prompt was spoken
            self.session.reset_away_timer()
        elif ev.new_state == "away":
            logger.info("caller silent in room %s: hanging up", self.ctx.room.name)
            self._spawn(hang_up(self.ctx, self.session, SILENT_GOODBYE_LINE))
