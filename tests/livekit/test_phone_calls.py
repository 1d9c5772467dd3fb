"""Phone calls through the real livekit-sip: a SIPp phone dials the trunk number, livekit-sip puts it in a
room of its own and dispatches the agent, which answers, greets first, listens over the 8 kHz line, takes
key presses, transfers with SIP REFER and hangs up with BYE."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.localsip import SipAddresses
from agent.localstack import LocalStack
from agent.telephony.provision import Provisioned, SipAdmin
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import phone_settings
from tests.livekit.phone import dial
from tests.speech import speak
from tests.workers import WorkerProcess


@pytest.fixture(scope="module")
async def provisioned(livekit_stack: LocalStack, sip_server: SipAddresses) -> Provisioned:
    async with SipAdmin(phone_settings(livekit_stack)) as admin:
        return await admin.setup()


async def test_a_caller_is_greeted_and_answered(
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset(["It is sunny and warm today. Anything else?"])
    async with dial(sip_server, tmp_path / "sipp") as call:
        phone = call.phone
        await phone.wait_for(lambda: phone.first_audio_after(0), 90, "the greeting")
        assert not phone_llm.requests, "the greeting is spoken before the caller says anything"
        await phone.wait_for(lambda: (phone.last_audio() or 0) < phone.audio[-1][0] - 1.0, 60, "the greeting to end")
        spoke_until = await phone.say(speak("What is the weather like today?", clips_dir))
        (request,) = await phone_llm.wait_for_requests(1, timeout=60)
        assert request.user_texts[-1].strip(), "the caller's words reached the LLM"
        await phone.wait_for(lambda: phone.first_audio_after(spoke_until), 60, "the answer")
