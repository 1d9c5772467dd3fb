"""The real livekit-server (+ redis) for the tests, built by `make test` from its Go module and started from the
shipped livekit.yaml on free ports. WebRTC media stays inside the test run's own network namespace
(tests/run-isolated): candidates name only its private address, which nothing outside the namespace has."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.localsip import SipAddresses, start_sip
from agent.localstack import LocalStack, StackAddresses
from agent.rooms import room_token
from agent.settings import Settings
from tests.fakes.openai_server import ScriptedLLMServer
from tests.sipp import Sipp
from tests.workers import ROOT, WorkerProcess, free_port, launch_worker

MEDIA_IP = os.environ.get("VOICE_AGENT_TEST_MEDIA_IP")
REGISTER_TIMEOUT = 300.0  # loading the synthetic models on a busy 2-core machine


@pytest.fixture(scope="session")
def livekit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert MEDIA_IP, (
        "the LiveKit tests run in a network namespace of their own: use `make test`, or prefix the pytest "
        "command with tests/run-isolated"
    )
    where = StackAddresses(
        node_ip=MEDIA_IP,
        bind_ip="127.0.0.1",
        http_port=free_port(),
        rtc_tcp_port=free_port(),
        # nothing else listens in the namespace, so fixed UDP ranges are free
        rtc_udp_ports=(40000, 40999),
        turn_udp_port=3478,
        turn_tls_port=free_port(),
        turn_relay_ports=(41000, 41999),
        redis_port=free_port(),
    )
    stack = LocalStack(ROOT / "livekit.yaml", tmp_path_factory.mktemp("livekit-stack"), where).start()
    try:
        yield stack
    finally:
        stack.stop()


def stack_settings(stack: LocalStack, **overrides: Any) -> Settings:
    """Settings as the product reads them for this stack (tokens, `voice-agent web`)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        livekit_url=stack.url,
        livekit_api_key=stack.api_key,
        livekit_api_secret=stack.api_secret,
        **overrides,
    )


def caller_token(stack: LocalStack, agent_name: str, room: str | None = None) -> tuple[str, str]:
    """(room, token) as `POST /api/token` hands them out: the room configuration dispatches `agent_name`."""
    room = room or f"call-{secrets.token_hex(4)}"
    return room, room_token(stack_settings(stack, agent_name=agent_name), room, f"caller-{secrets.token_hex(3)}")


async def start_worker(
    stack: LocalStack, log: Path, agent_name: str, llm: ScriptedLLMServer, **env: str
) -> WorkerProcess:
    """`voice-agent start` against the stack; returns once the server registered it."""
    worker = await launch_worker(
        log,
        stack.env()
        | {
            "VOICE_AGENT_AGENT_NAME": agent_name,
            "VOICE_AGENT_LLM_BASE_URL": llm.base_url,
            "VOICE_AGENT_MAX_SESSIONS": "2",
        }
        | env,
    )
    try:
        await worker.wait_for_log('"registered worker"', REGISTER_TIMEOUT)
    except BaseException:
        await worker.kill()
        raise
    return worker


@pytest.fixture(scope="module")
async def module_llm() -> AsyncIterator[ScriptedLLMServer]:
    server = await ScriptedLLMServer(["Hello! How can I help you today?"]).start()
    yield server
    await server.aclose()


ROOM_AGENT = "room-agent"


@pytest.fixture(scope="session")
async def room_llm() -> AsyncIterator[ScriptedLLMServer]:
    """The LLM of `room_worker`; each test sets its script with `reset()`."""
    server = await ScriptedLLMServer(["Hello! How can I help you today?"]).start()
    yield server
    await server.aclose()


@pytest.fixture(scope="session")
async def room_worker(
    livekit_stack: LocalStack, room_llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """One worker named ROOM_AGENT for the tests that talk to the agent in rooms (from Python or a browser)."""
    log = tmp_path_factory.mktemp("room-worker") / "worker.log"
    worker = await start_worker(
        livekit_stack, log, ROOM_AGENT, room_llm, VOICE_AGENT_FALSE_INTERRUPTION_TIMEOUT="2.0"
    )
    yield worker
    await worker.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report ends with the logs of the servers and workers it used."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, LocalStack):
                for child in value.children:
                    report.sections.append((f"{child.name} log (tail)", child.log_tail()))
            elif isinstance(value, Sipp):
                report.sections.append((f"SIPp {name}", value.report()))
            elif isinstance(value, WorkerProcess):
                report.sections.append((f"worker {name} log (tail)", value.log_tail()))
    return report


PHONE_AGENT = "phone-agent"
TRUNK_NUMBER = "+15550100000"
TRANSFER_TO = "sip:front-desk@example.com"
DIGIT_TIMEOUT = 2.0
SILENCE_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def sip_server(livekit_stack: LocalStack) -> SipAddresses:
    """livekit-sip (built by `make test`) on the namespace's address, a child of the stack."""
    assert MEDIA_IP
    where = SipAddresses(
        ip=MEDIA_IP, sip_port=5060, rtp_ports=(42000, 42999), health_port=free_port(), prometheus_port=free_port()
    )
    start_sip(livekit_stack, ROOT / "infra/sip/config.yaml", where)
    return where


def phone_settings(stack: LocalStack, **overrides: Any) -> Settings:
    """What an operator sets for `voice-agent sip ...` on this stack: our number, only the test's address."""
    assert MEDIA_IP
    defaults: dict[str, Any] = {
        "agent_name": PHONE_AGENT,
        "sip_numbers": [TRUNK_NUMBER],
        "sip_allowed_addresses": [f"{MEDIA_IP}/32"],
        "sip_auth_username": "",  # the address is the trunk's check
        "sip_inbound_trunk": ROOT / "infra/sip/inbound-trunk.json",
        "sip_dispatch_rule": ROOT / "infra/sip/dispatch-rule.json",
        "sip_outbound_trunk": ROOT / "infra/sip/outbound-trunk.json",
    }
    return stack_settings(stack, **(defaults | overrides))


@pytest.fixture(scope="session")
async def phone_llm() -> AsyncIterator[ScriptedLLMServer]:
    server = await ScriptedLLMServer(["Hello! How can I help you today?"]).start()
    yield server
    await server.aclose()


@pytest.fixture(scope="session")
async def phone_worker(
    livekit_stack: LocalStack, phone_llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """The worker named PHONE_AGENT that the dispatch rule sends phone calls to."""
    log = tmp_path_factory.mktemp("phone-worker") / "worker.log"
    worker = await start_worker(
        livekit_stack, log, PHONE_AGENT, phone_llm, VOICE_AGENT_TRANSFER_TO=TRANSFER_TO,
        VOICE_AGENT_PHONE_GREETING="Hello, you are talking to the test agent. How can I help?",
        VOICE_AGENT_DTMF_DIGIT_TIMEOUT=str(DIGIT_TIMEOUT),
        VOICE_AGENT_SYSTEM_PROMPT="You answer calls to {trunk_number}. The caller's number is {caller_number}.",
        VOICE_AGENT_CALLER_SILENCE_TIMEOUT=str(SILENCE_TIMEOUT),
    )
    yield worker
    await worker.kill()
