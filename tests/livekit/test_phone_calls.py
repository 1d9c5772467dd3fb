"""Phone calls through the real livekit-sip: a SIPp phone dials the trunk number, livekit-sip puts it in a
room of its own and dispatches the agent, which answers, greets first, listens over the 8 kHz line, takes
key presses, transfers with SIP REFER and hangs up with BYE."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from agent.bench.phone_caller import PhoneCaller
from agent.localsip import SipAddresses
from agent.localstack import LocalStack
from agent.telephony.keypad import entry_text
from agent.telephony.provision import Provisioned, SipAdmin
from tests.conversations.saved import saved_call
from tests.fakes.openai_server import ScriptedLLMServer, ToolCall
from tests.livekit.conftest import DIGIT_TIMEOUT, SILENCE_TIMEOUT, TRANSFER_TO, TRUNK_NUMBER, phone_settings
from tests.livekit.phone import Call, dial
from tests.speech import speak
from tests.workers import WorkerProcess, conversations_db

logger = logging.getLogger(__name__)
QUIET_BOUND = 3.0  # VAD needs the phone profile's min_interruption_duration (0.6 s) of speech, plus jitter
LONG_REPLY = " ".join(
    f"Here is sentence number {i} of a very long story that keeps on going." for i in range(1, 25)
)


@pytest.fixture(scope="module")
async def provisioned(livekit_stack: LocalStack, sip_server: SipAddresses) -> Provisioned:
    async with SipAdmin(phone_settings(livekit_stack)) as admin:
        return await admin.setup()


async def test_a_caller_is_greeted_and_answered(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset(["It is sunny and warm today. Anything else?"])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        phone = call.phone
        await greeted(call)
        assert not phone_llm.requests, "the greeting is spoken before the caller says anything"
        spoke_until = await phone.say(speak("What is the weather like today?", clips_dir))
        (request,) = await phone_llm.wait_for_requests(1, timeout=60)
        assert request.user_texts[-1].strip(), "the caller's words reached the LLM"
        system = request.body["messages"][0]
        assert (
            system["role"] == "system"
            and call.caller in system["content"]
            and TRUNK_NUMBER in system["content"]
        )
        assert call.caller not in phone_worker.log.read_text(), "the caller's number is not logged in clear"
        answer = await phone.wait_for_value(lambda: phone.first_audio_after(spoke_until), 60, "the answer")
        # saved as it happens: the numbers of the call, the greeting and the caller's words
        saved = await saved_call(
            conversations_db(phone_worker.log),
            lambda c: c["caller_number"] == call.caller and any(e.get("role") == "user" for e in c["transcript"]),
        )
        assert (saved["transport"], saved["trunk_number"], saved["direction"]) == ("phone", TRUNK_NUMBER, "inbound")
        assert saved["transcript"][0]["role"] == "agent", "the greeting comes first"
    logger.info(
        "phone: voice-to-voice %.2f s (end of caller speech -> first agent RTP audio)", answer - spoke_until
    )


async def greeted(call: Call) -> None:
    """Until the agent's greeting has been heard to its end (a second of quiet after it)."""
    phone = call.phone
    await phone.wait_for(lambda: phone.first_audio_after(0), 90, "the greeting")
    await phone.wait_for(
        lambda: (phone.last_audio() or 0) < phone.audio[-1][0] - 1.0, 60, "the greeting to end"
    )


async def test_key_presses_reach_the_agent_as_an_entry(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    tmp_path: Path,
) -> None:
    phone_llm.reset(["You chose option twelve."])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        await greeted(call)
        pressed_at = await call.phone.press("12#")
        (request,) = await phone_llm.wait_for_requests(1, timeout=30)
        assert request.user_texts[-1] == entry_text(["1", "2"])
        assert request.started_at - pressed_at < DIGIT_TIMEOUT, "'#' ends the entry without waiting"
        await call.phone.wait_for(lambda: call.phone.first_audio_after(pressed_at), 60, "the answer")

        phone_llm.reset(["Thank you."])
        pressed_at = await call.phone.press("7")  # no '#': the entry ends after the digit timeout
        (request,) = await phone_llm.wait_for_requests(1, timeout=30)
        assert request.user_texts[-1] == entry_text(["7"])
        assert request.started_at - pressed_at >= DIGIT_TIMEOUT - 0.5


async def test_transfer_to_a_person_sends_refer(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset([ToolCall("transfer_to_human"), "Transferring you."])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        await greeted(call)
        spoke_until = await call.phone.say(speak("I would like to talk to a person please.", clips_dir))
        (request,) = await phone_llm.wait_for_requests(1, timeout=60)
        assert {"transfer_to_human", "end_call"} <= set(request.tool_names), "phone calls get the phone tools"
        refer = await call.sipp.wait_for_line(r"refer-to (\S+)", 90)
        refer_seen = time.monotonic()
        assert refer.group(1) == TRANSFER_TO
        line = call.phone.first_audio_after(spoke_until)
        assert line is not None and line < refer_seen, "the agent said its line before transferring"
        await call.sipp.wait_for_line(
            "bye received", 30
        )  # livekit-sip leaves the call once it is transferred
        assert await call.sipp.wait(30) == 0, call.sipp.report()
    assert len(phone_llm.requests) == 1, "a transfer needs no reply from the LLM"
    await phone_worker.wait_for_no_jobs()


async def test_a_failed_transfer_is_spoken(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset([ToolCall("transfer_to_human"), "Transferring you."])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp", accept_refer=False) as call:
        await greeted(call)
        await call.phone.say(speak("Can I talk to a real person?", clips_dir))
        await call.sipp.wait_for_line(r"refer-to (\S+)", 90)  # declined with 603 by the phone
        declined = time.monotonic()
        await phone_worker.wait_for_log("transfer failed", 30)
        spoken = await call.phone.wait_for_value(
            lambda: call.phone.first_audio_after(declined + 0.5), 30, "the agent to say the transfer failed"
        )
        assert call.sipp.process.returncode is None, "the call goes on after a failed transfer"
        assert spoken - declined < 15
    assert TRANSFER_TO not in phone_worker.log.read_text(), "the transfer target is masked in the log too"


async def test_end_call_says_goodbye_then_hangs_up(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset([ToolCall("end_call"), "Goodbye, and thank you for calling."])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        await greeted(call)
        await call.phone.say(speak("That is all, thank you. Bye.", clips_dir))
        await call.sipp.wait_for_line("bye received", 120)
        bye_seen = time.monotonic()
        requests = await phone_llm.wait_for_requests(2, timeout=5)
        goodbye = call.phone.first_audio_after(requests[1].started_at)
        assert goodbye is not None and goodbye < bye_seen, "the goodbye was heard before the BYE"
        assert await call.sipp.wait(30) == 0, call.sipp.report()
    await phone_worker.wait_for_no_jobs()


async def test_a_caller_hanging_up_ends_the_job(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    tmp_path: Path,
) -> None:
    async with dial(livekit_stack, sip_server, tmp_path / "sipp", hang_up_after_ms=10_000) as call:
        await call.phone.wait_for(lambda: call.phone.first_audio_after(0), 90, "the greeting")
        assert await phone_worker.active_jobs() == 1
        await call.sipp.wait_for_line("hung up", 30)
        assert await call.sipp.wait(10) == 0, call.sipp.report()
    await phone_worker.wait_for_no_jobs()


async def test_a_silent_caller_is_asked_then_hung_up_on(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    tmp_path: Path,
) -> None:
    phone_llm.reset(["Nobody should ask me anything."])
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        await greeted(call)
        quiet_from = call.phone.last_audio() or 0.0
        prompt = await call.phone.wait_for_value(
            lambda: call.phone.first_audio_after(quiet_from + SILENCE_TIMEOUT - 1.0),
            60,
            "'are you still there?'",
        )
        assert prompt - quiet_from > SILENCE_TIMEOUT - 1.0
        await call.sipp.wait_for_line("bye received", 3 * SILENCE_TIMEOUT + 30)
        assert time.monotonic() - prompt > SILENCE_TIMEOUT - 1.0, "a full timeout after the prompt"
    assert not phone_llm.requests, "prompt and goodbye are the agent's own lines"
    await phone_worker.wait_for_no_jobs()


async def test_talking_over_the_agent_on_the_phone_stops_it(
    livekit_stack: LocalStack,
    provisioned: Provisioned,
    phone_worker: WorkerProcess,
    phone_llm: ScriptedLLMServer,
    sip_server: SipAddresses,
    clips_dir: Path,
    tmp_path: Path,
) -> None:
    phone_llm.reset([LONG_REPLY, "Okay, I stopped."], tokens_per_second=6)  # still streaming at barge-in
    async with dial(livekit_stack, sip_server, tmp_path / "sipp") as call:
        phone = call.phone
        await greeted(call)
        spoke_until = await phone.say(speak("Please tell me a long story.", clips_dir))
        await phone.wait_for(lambda: phone.first_audio_after(spoke_until), 90, "the story")
        await phone.silence(1.0)
        # talk over the agent's voice, not over a pause between its sentences (the CPU TTS is not real time)
        await phone.wait_for(lambda: audible_now(phone), 60, "the agent's voice on the line")

        barge_in_at = time.monotonic()
        await phone.say(speak("Stop, stop. Wait a moment please.", clips_dir))
        first = phone_llm.requests[0]
        await phone.wait_for(lambda: first.finished.is_set(), 30, "the first LLM request to end")
        assert first.cancelled and not first.completed, "the LLM stream of the interrupted reply was closed"
        await phone.silence(QUIET_BOUND + 1.0)
        second_started = phone_llm.requests[1].started_at if len(phone_llm.requests) > 1 else float("inf")
        resumed = phone.first_audio_after(barge_in_at + QUIET_BOUND)
        assert resumed is None or resumed > second_started, (
            "no RTP audio of the interrupted reply after barge-in"
        )
        window_end = min(second_started, barge_in_at + QUIET_BOUND)
        talked_on = max(
            (at for at, lvl in phone.audio if barge_in_at < at < window_end and lvl >= 200),
            default=barge_in_at,
        )
    logger.info("phone: barge-in -> last RTP audio of the interrupted reply %.2f s", talked_on - barge_in_at)


def audible_now(phone: PhoneCaller) -> bool:
    """The latest RTP packet from the agent carries speech (the line sends quiet packets between words)."""
    return bool(phone.audio) and phone.audio[-1][1] >= 200 and time.monotonic() - phone.audio[-1][0] < 0.1
