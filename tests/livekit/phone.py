"""Placing a test phone call: SIPp does the SIP signaling against livekit-sip, a PhoneCaller the RTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.bench.phone_caller import PhoneCaller
from agent.localsip import SipAddresses
from tests.livekit.conftest import MEDIA_IP, TRUNK_NUMBER
from tests.sipp import HANG_UP, INVITE, WAIT_FOR_BYE, Sipp, scenario, start_sipp


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass
class Call:
    phone: PhoneCaller
    sipp: Sipp


@asynccontextmanager
async def dial(
    sip: SipAddresses, workdir: Path, *, number: str = TRUNK_NUMBER, hang_up_after_ms: int = 0
) -> AsyncIterator[Call]:
    """Call `number` on livekit-sip; yields once the call is answered and media flows both ways."""
    assert MEDIA_IP
    phone = await PhoneCaller.open(MEDIA_IP)
    ending = HANG_UP if hang_up_after_ms else WAIT_FOR_BYE
    sipp = await start_sipp(
        scenario("call", INVITE, ending), workdir, local_ip=MEDIA_IP, local_port=free_udp_port(MEDIA_IP),
        rtp_port=phone.port, remote=f"{sip.ip}:{sip.sip_port}", service=number, hang_up_after_ms=hang_up_after_ms,
    )
    try:
        phone.connect(*await sipp.media())
        yield Call(phone, sipp)
    except BaseException as e:
        e.add_note(sipp.report())
        raise
    finally:
        await phone.close()
        await sipp.stop()
