"""Outbound: `voice-agent sip call NUMBER` dials through the outbound trunk; livekit-sip rings a SIPp phone,
which answers; the agent greets when the call is active and, at VOICE_AGENT_MAX_CALL_DURATION, says so and
hangs up."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.bench.phone_caller import PhoneCaller
from agent.localsip import SipAddresses
from agent.localstack import LocalStack
from agent.telephony.provision import SipAdmin
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import MEDIA_IP, phone_settings, start_worker
from tests.livekit.phone import free_udp_port
from tests.sipp import ANSWER, scenario, start_sipp
from tests.workers import ROOT, WorkerProcess

CALLING_AGENT = "phone-calling-agent"
CALL_LIMIT = 15.0


@pytest.fixture(scope="module")
async def calling_worker(
    livekit_stack: LocalStack, phone_llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("calling-worker") / "worker.log"
    worker = await start_worker(
        livekit_stack,
        log,
        CALLING_AGENT,
        phone_llm,
        VOICE_AGENT_MAX_CALL_DURATION=str(CALL_LIMIT),
        VOICE_AGENT_PHONE_GREETING="Hello, this is the test agent calling you.",
    )
    yield worker
    await worker.kill()


async def test_sip_call_rings_a_phone_and_the_agent_talks(
    livekit_stack: LocalStack, sip_server: SipAddresses, calling_worker: WorkerProcess, tmp_path: Path
) -> None:
    assert MEDIA_IP
    sip_port = free_udp_port(MEDIA_IP)
    phone = await PhoneCaller.open(MEDIA_IP)
    sipp = await start_sipp(
        scenario("answer", ANSWER),
        tmp_path / "sipp",
        local_ip=MEDIA_IP,
        local_port=sip_port,
        rtp_port=phone.port,
    )
    outbound = {"sip_outbound_address": f"{MEDIA_IP}:{sip_port}"}
    try:
        async with SipAdmin(phone_settings(livekit_stack, **outbound)) as admin:
            assert (await admin.setup()).outbound_trunk is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_AGENT_", "LIVEKIT_"))}
        cli = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "voice-agent"),
            "sip",
            "call",
            "+1 555 010 0777",
            env=env
            | livekit_stack.env()
            | {
                "VOICE_AGENT_AGENT_NAME": CALLING_AGENT,
                "VOICE_AGENT_SIP_OUTBOUND_ADDRESS": outbound["sip_outbound_address"],
                "VOICE_AGENT_SIP_OUTBOUND_TRUNK": str(ROOT / "infra/sip/outbound-trunk.json"),
            },
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        phone.connect(*await sipp.media(60))  # the INVITE's offer
        await sipp.wait_for_line("answered", 60)
        answered = time.monotonic()
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        assert out.decode().startswith("answered: room call-out-")

        await phone.wait_for(lambda: phone.first_audio_after(answered), 60, "the agent's greeting")
        assert "+15550100777" in (tmp_path / "sipp" / "messages.log").read_text(), "the number was dialed"
        await sipp.wait_for_line("bye received", CALL_LIMIT + 60)
        assert time.monotonic() - answered >= CALL_LIMIT - 1.0, "hung up at the call's time limit"
        assert await sipp.wait(10) == 0, sipp.report()
    except BaseException as e:
        e.add_note(sipp.report())
        raise
    finally:
        await phone.close()
        await sipp.stop()
    await calling_worker.wait_for_no_jobs()
