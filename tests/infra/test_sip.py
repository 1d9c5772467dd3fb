"""livekit-sip config and the SIP trunk / dispatch-rule definitions.

livekit-sip ignores unknown config keys silently (a misspelled key simply does nothing), so its config is
checked against schemas/livekit_sip_keys.yaml (extracted from livekit/sip, commits in its header). The JSON
files are what `lk sip inbound create` / `lk sip dispatch create` read: protojson of
CreateSIPInboundTrunkRequest / CreateSIPDispatchRuleRequest (livekit/livekit-cli cmd/lk/sip.go,
createAndPrintReqs, which rejects unknown fields); here they are parsed with the same livekit-protocol
messages and ignore_unknown_fields=False."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from livekit.protocol import sip as sip_proto

from agent.settings import Settings
from tests.infra.helpers import ROOT, key_tree, load_yaml, load_yaml_docs, unknown_keys

SIP_KEYS = key_tree("livekit_sip_keys.yaml")
AGENT_NAME = Settings.model_fields["agent_name"].default


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml("infra/sip/config.yaml")


def _k8s_sip_config() -> dict[str, Any]:
    (cm,) = [d for d in load_yaml_docs("infra/k8s/livekit-sip.yaml") if d["kind"] == "ConfigMap"]
    return yaml.safe_load(cm["data"]["config.yaml"])


def test_config_uses_only_known_keys(config: dict[str, Any]) -> None:
    assert unknown_keys(config, SIP_KEYS) == []


def test_k8s_config_uses_only_known_keys() -> None:
    assert unknown_keys(_k8s_sip_config(), SIP_KEYS) == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("log_level", "debug", "log_level: unknown key"),  # the key livekit-sip's README shows; ignored
        ("sip_prot", 5060, "sip_prot: unknown key"),
        ("rtp_ports", "10000-20000", "rtp_ports: unknown key"),
    ],
)
def test_misspelled_keys_are_caught(config: dict[str, Any], key: str, value: Any, expected: str) -> None:
    broken = copy.deepcopy(config) | {key: value}
    assert expected in unknown_keys(broken, SIP_KEYS)


def test_nested_typo_is_caught(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    broken["redis"]["adress"] = "127.0.0.1:6379"
    assert unknown_keys(broken, SIP_KEYS) == ["redis.adress: unknown key"]


def test_config_matches_the_server(config: dict[str, Any]) -> None:
    server = load_yaml("livekit.yaml")
    assert config["redis"]["address"] == server["redis"]["address"], "SIP and server must share redis"
    assert config["ws_url"] == f"ws://127.0.0.1:{server['port']}"
    assert re.fullmatch(r"\d+-\d+", str(config["rtp_port"]))
    assert config["sip_port"] == 5060
    assert config["logging"]["level"] in {"debug", "info", "warn", "error"}
    assert "api_secret" not in config and "api_key" not in config, "keys come from the environment"


def _parse(path: str, message: type) -> Any:
    return json_format.Parse((ROOT / path).read_text(), message(), ignore_unknown_fields=False)


def test_inbound_trunk_parses() -> None:
    trunk = _parse("infra/sip/inbound-trunk.json", sip_proto.CreateSIPInboundTrunkRequest).trunk
    assert trunk.numbers and all(re.fullmatch(r"\+\d{8,15}", n) for n in trunk.numbers)
    assert trunk.allowed_addresses or trunk.auth_username, "an open trunk accepts anyone's calls"
    if trunk.auth_username:
        assert "CHANGE-ME" in trunk.auth_password, "only placeholders may be committed"


def test_dispatch_rule_dispatches_the_agent() -> None:
    request = _parse("infra/sip/dispatch-rule.json", sip_proto.CreateSIPDispatchRuleRequest)
    assert request.HasField("dispatch_rule"), "top-level rule/trunk_ids/room_config are deprecated"
    rule = request.dispatch_rule
    assert rule.rule.WhichOneof("rule") == "dispatch_rule_individual", "one room per caller"
    assert rule.rule.dispatch_rule_individual.room_prefix
    assert [a.agent_name for a in rule.room_config.agents] == [AGENT_NAME] == ["voice-agent"]
    assert rule.trunk_ids, "a rule without trunk_ids also catches calls that matched no trunk"


@pytest.mark.parametrize(
    ("path", "message", "mutate"),
    [
        (
            "infra/sip/inbound-trunk.json",
            sip_proto.CreateSIPInboundTrunkRequest,
            lambda d: d["trunk"].__setitem__("number", ["+15550100000"]),
        ),
        (
            "infra/sip/dispatch-rule.json",
            sip_proto.CreateSIPDispatchRuleRequest,
            lambda d: d["dispatch_rule"]["room_config"]["agents"][0].__setitem__("agentname", "x"),
        ),
        (
            "infra/sip/dispatch-rule.json",
            sip_proto.CreateSIPDispatchRuleRequest,
            lambda d: d["dispatch_rule"]["rule"].__setitem__("dispatchRuleIndividal", {}),
        ),
    ],
)
def test_unknown_json_fields_are_rejected(path: str, message: type, mutate: Any) -> None:
    data = json.loads((ROOT / path).read_text())
    mutate(data)
    with pytest.raises(json_format.ParseError):
        json_format.Parse(json.dumps(data), message(), ignore_unknown_fields=False)
