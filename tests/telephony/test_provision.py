"""The trunk and rule `voice-agent sip setup` sends, built from the shipped JSON files plus settings."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import StartupError
from agent.settings import Settings
from agent.telephony.provision import check_number, dispatch_rule, inbound_trunk, outbound_trunk
from tests.workers import ROOT


def settings(**overrides: Any) -> Settings:
    paths = {
        "sip_inbound_trunk": ROOT / "infra/sip/inbound-trunk.json",
        "sip_dispatch_rule": ROOT / "infra/sip/dispatch-rule.json",
        "sip_outbound_trunk": ROOT / "infra/sip/outbound-trunk.json",
    }
    return Settings(_env_file=None, **(paths | overrides))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "dialed"),
    [
        ("+15550100000", "+15550100000"),
        ("+1 555 010-0000", "+15550100000"),
        ("15550100000", "15550100000"),
        ("sip:desk@pbx.example.com", "sip:desk@pbx.example.com"),
    ],
)
def test_numbers_and_sip_uris_are_accepted(given: str, dialed: str) -> None:
    assert check_number(given) == dialed


@pytest.mark.parametrize("bad", ["", "12", "+0155501", "555-CALL-NOW", "sip:nobody", "+1555010000012345"])
def test_bad_numbers_are_refused(bad: str) -> None:
    with pytest.raises(StartupError, match="not a phone number"):
        check_number(bad)


def test_settings_override_the_inbound_trunk() -> None:
    trunk = inbound_trunk(
        settings(
            sip_numbers=["+15550100001"],
            sip_allowed_addresses=["198.51.100.7/32"],
            sip_auth_username="user",
            sip_auth_password="pass-word",
        )
    )
    assert list(trunk.numbers) == ["+15550100001"]
    assert list(trunk.allowed_addresses) == ["198.51.100.7/32"]
    assert (trunk.auth_username, trunk.auth_password) == ("user", "pass-word")
    assert trunk.name == "voice-agent inbound" and trunk.max_call_duration.seconds == 3600


def test_the_shipped_placeholders_are_not_sent() -> None:
    with pytest.raises(StartupError, match="CHANGE-ME credentials"):
        inbound_trunk(settings())
    assert outbound_trunk(settings()) is None, "no outbound trunk until its address is set"


def test_the_rule_dispatches_our_agent_from_our_trunk_only() -> None:
    rule = dispatch_rule(settings(agent_name="front-desk"), "ST_abc")
    assert list(rule.trunk_ids) == ["ST_abc"]
    assert [a.agent_name for a in rule.room_config.agents] == ["front-desk"]
    assert rule.rule.dispatch_rule_individual.room_prefix == "call"


def test_outbound_trunk_from_settings() -> None:
    trunk = outbound_trunk(
        settings(sip_outbound_address="sip.example.net", sip_outbound_number="+15550100002")
    )
    assert trunk is not None
    assert (trunk.address, list(trunk.numbers)) == ("sip.example.net", ["+15550100002"])
