"""Placing a test phone call: SIPp does the SIP signaling against livekit-sip, a PhoneCaller the RTP."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from livekit import api

from agent.bench.phone_caller import PhoneCaller
from agent.localsip import SipAddresses
from agent.localstack import LocalStack
from tests.livekit.conftest import MEDIA_IP, TRUNK_NUMBER
from tests.sipp import DECLINE_REFER, HANG_UP, INVITE, WAIT_FOR_BYE, Sipp, scenario, start_sipp


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass
class Call:
    phone: PhoneCaller
    sipp: Sipp
    caller: str


async def end_rooms_of(stack: LocalStack, caller: str) -> None:
    """Delete the caller's room(s) (livekit-sip sends BYE), so no call outlives its test and holds a slot of
    the worker until livekit-sip's media timeout."""
    async with api.LiveKitAPI(stack.http_url, stack.api_key, stack.api_secret) as lk:
        for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms:
            if room.name.startswith(f"call_{caller}_"):  # the dispatch rule's individual room name
                await lk.room.delete_room(api.DeleteRoomRequest(room=room.name))


@asynccontextmanager
async def dial(
    stack: LocalStack,
    sip: SipAddresses,
    workdir: Path,
    *,
    number: str = TRUNK_NUMBER,
    hang_up_after_ms: int = 0,
    accept_refer: bool = True,
) -> AsyncIterator[Call]:
    """Call `number` on livekit-sip from a fresh caller number; yields once the call is answered and media
    flows both ways; at the end hangs up what is still up."""
    assert MEDIA_IP
    caller = f"+1555{secrets.randbelow(10**7):07d}"
    phone = await PhoneCaller.open(MEDIA_IP)
    ending = HANG_UP if hang_up_after_ms else WAIT_FOR_BYE if accept_refer else DECLINE_REFER
    sipp = await start_sipp(
        scenario("call", INVITE, ending),
        workdir,
        local_ip=MEDIA_IP,
        local_port=free_udp_port(MEDIA_IP),
        rtp_port=phone.port,
        caller=caller,
        remote=f"{sip.ip}:{sip.sip_port}",
        service=number,
        hang_up_after_ms=hang_up_after_ms,
    )
    try:
        phone.connect(*await sipp.media())
        yield Call(phone, sipp, caller)
    except BaseException as e:
        e.add_note(sipp.report())
        raise
    finally:
        await end_rooms_of(stack, caller)
        with contextlib.suppress(asyncio.TimeoutError):
            await sipp.wait(10)  # answering the BYE
        await phone.close()
        await sipp.stop()
