"""`voice-agent sip setup|list|delete|call` against the real server: idempotent (found by name), from the
JSON definitions plus settings, and one-line errors (bad number, missing keys, a server without SIP)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.localsip import SipAddresses
from agent.localstack import LocalStack, StackAddresses
from tests.livekit.conftest import MEDIA_IP
from tests.test_cli import assert_one_line_error, run_cli
from tests.workers import ROOT, free_port


@pytest.fixture
def definitions(tmp_path: Path) -> dict[str, str]:
    """The shipped files under names of their own, so the phone tests' trunk and rule stay untouched."""
    paths = {}
    for kind in ("inbound-trunk", "dispatch-rule", "outbound-trunk"):
        body = json.loads((ROOT / f"infra/sip/{kind}.json").read_text())
        (body.get("trunk") or body["dispatch_rule"])["name"] = f"provisioning test {kind}"
        (tmp_path / f"{kind}.json").write_text(json.dumps(body))
        paths[f"VOICE_AGENT_SIP_{kind.replace('-', '_').upper()}"] = str(tmp_path / f"{kind}.json")
    return paths


def sip_env(stack: LocalStack, definitions: dict[str, str], **extra: str) -> dict[str, str]:
    return (
        stack.env()
        | definitions
        | {
            "VOICE_AGENT_AGENT_NAME": "provisioning-agent",
            "VOICE_AGENT_SIP_NUMBERS": '["+15550100555"]',
            "VOICE_AGENT_SIP_ALLOWED_ADDRESSES": f'["{MEDIA_IP}/32"]',
            "VOICE_AGENT_SIP_AUTH_USERNAME": "provider-user",
            "VOICE_AGENT_SIP_AUTH_PASSWORD": "provider-password-123",
            "VOICE_AGENT_SIP_OUTBOUND_ADDRESS": "sip.provider.example.com",
        }
        | extra
    )


def ids(output: str) -> list[str]:
    return re.findall(r"\b(?:ST|SDR)_\w+", output)


def test_setup_twice_gives_the_same_trunks_and_rule(
    livekit_stack: LocalStack, sip_server: SipAddresses, definitions: dict[str, str]
) -> None:
    env = sip_env(livekit_stack, definitions)
    first = run_cli("sip", "setup", env=env)
    assert first.returncode == 0, first.stderr
    assert len(ids(first.stdout)) == 3, first.stdout  # inbound trunk, dispatch rule, outbound trunk
    again = run_cli("sip", "setup", env=env | {"VOICE_AGENT_SIP_NUMBERS": '["+15550100556"]'})
    assert ids(again.stdout) == ids(first.stdout), "updated in place, found by name"

    listed = run_cli("sip", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    ours = [line for line in listed.stdout.splitlines() if "provisioning test" in line]
    assert len(ours) == 3, listed.stdout
    inbound = next(line for line in ours if "inbound-trunk" in line)
    assert "+15550100556" in inbound and "+15550100555" not in inbound, "the update replaced the numbers"
    assert "provider-password-123" not in listed.stdout, "list never prints passwords"
    rule = next(line for line in ours if "dispatch-rule" in line)
    assert "provisioning-agent" in rule and ids(first.stdout)[0] in rule, (
        "the rule dispatches our agent, our trunk only"
    )

    deleted = run_cli("sip", "delete", env=env)
    assert deleted.returncode == 0 and sorted(ids(deleted.stdout)) == sorted(ids(first.stdout)), (
        deleted.stdout
    )
    assert "provisioning test" not in run_cli("sip", "list", env=env).stdout


def test_an_open_trunk_is_refused(livekit_stack: LocalStack, definitions: dict[str, str]) -> None:
    env = sip_env(
        livekit_stack, definitions, VOICE_AGENT_SIP_NUMBERS="[]", VOICE_AGENT_SIP_ALLOWED_ADDRESSES="[]"
    )
    del env["VOICE_AGENT_SIP_AUTH_USERNAME"]
    body = json.loads(Path(definitions["VOICE_AGENT_SIP_INBOUND_TRUNK"]).read_text())
    del body["trunk"]["auth_username"], body["trunk"]["auth_password"]
    Path(definitions["VOICE_AGENT_SIP_INBOUND_TRUNK"]).write_text(json.dumps(body))
    assert_one_line_error(run_cli("sip", "setup", env=env), "would accept calls from anyone")


def test_placeholder_credentials_are_refused(livekit_stack: LocalStack, definitions: dict[str, str]) -> None:
    env = sip_env(livekit_stack, definitions)
    del env["VOICE_AGENT_SIP_AUTH_USERNAME"]
    assert_one_line_error(run_cli("sip", "setup", env=env), "CHANGE-ME credentials")


@pytest.mark.parametrize("number", ["12ab", "+0123", "call me"])
def test_a_bad_number_is_one_line(
    livekit_stack: LocalStack, definitions: dict[str, str], number: str
) -> None:
    assert_one_line_error(
        run_cli("sip", "call", number, env=sip_env(livekit_stack, definitions)), "not a phone number"
    )


def test_missing_keys_are_one_line(definitions: dict[str, str]) -> None:
    assert_one_line_error(run_cli("sip", "list", env=definitions), "LIVEKIT_URL")


def test_a_server_without_sip_is_one_line(tmp_path: Path, definitions: dict[str, str]) -> None:
    where = StackAddresses(
        node_ip="127.0.0.1",
        http_port=free_port(),
        rtc_tcp_port=free_port(),
        rtc_udp_ports=(43000, 43099),
        turn_udp_port=free_port(),
        turn_tls_port=free_port(),
        turn_relay_ports=(43100, 43199),
    )
    alone = LocalStack(ROOT / "livekit.yaml", tmp_path / "alone", where, with_redis=False).start()
    try:
        proc = run_cli("sip", "setup", env=sip_env(alone, definitions))
    finally:
        alone.stop()
    assert_one_line_error(proc, "livekit-sip needs redis")
