"""LLM tools offered on phone calls only: end the call (livekit-agents' EndCallTool: the goodbye is spoken,
then the room is deleted, which sends BYE to the caller) and a cold transfer to a person (SIP REFER)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from livekit import api
from livekit.agents import RunContext, ToolResult, function_tool, get_job_context, llm
from livekit.agents.beta.tools import EndCallTool

from ..settings import Settings
from .call import PhoneCall, masked

logger = logging.getLogger("voice_agent.telephony")

TRANSFER_LINE = "One moment please, I am connecting you with a person."
TRANSFER_FAILED_LINE = "I am sorry, I could not connect you with a person right now. Can I help you myself?"


def phone_tools(settings: Settings, call: PhoneCall) -> list[llm.Tool | llm.Toolset]:
    tools: list[llm.Tool | llm.Toolset] = [
        EndCallTool(end_instructions="Say a short goodbye to the caller, in one sentence.", delete_room=True)
    ]
    if settings.transfer_to:
        tools.append(transfer_tool(settings.transfer_to, call))
    return tools


def transfer_tool(transfer_to: str, call: PhoneCall) -> llm.Tool:
    pending: set[asyncio.Task[None]] = set()

    async def transfer_after(ctx: RunContext) -> None:
        # speak the line first: the transfer ends this leg of the call
        await ctx.session.say(TRANSFER_LINE, allow_interruptions=False)
        job = get_job_context()
        try:
            await job.transfer_sip_participant(call.participant, transfer_to)
            logger.info("transferred the call to %s", masked(transfer_to))
        except (TimeoutError, api.TwirpError, aiohttp.ClientError) as e:  # refused, or no answer
            logger.warning("transfer failed (to %s): %s", masked(transfer_to), e)
            ctx.session.say(TRANSFER_FAILED_LINE)

    @function_tool(name="transfer_to_human")
    async def transfer(ctx: RunContext) -> ToolResult:
        """Transfer the caller to a human. Call this when the caller asks for a person, an operator or a
        representative, or when you cannot help them. Do not say anything yourself: the transfer
        announces itself."""
        task = asyncio.create_task(transfer_after(ctx))  # not awaited here: the line waits for this turn
        pending.add(task)
        task.add_done_callback(pending.discard)
        return ToolResult("The caller is being transferred to a person.", reply_required=False)

    return transfer
