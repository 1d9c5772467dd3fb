"""livekit.yaml (and the `livekit:` block of the Helm values) against livekit-server's accepted keys.

livekit-server decodes its config with yaml.v3 KnownFields: one unknown or misspelled key and it refuses to
start. schemas/livekit_server_keys.yaml is the key tree of the server's config structs (source commits in
its header); nothing here runs a server."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from tests.infra.helpers import key_tree, load_yaml, unknown_keys

SERVER_KEYS = key_tree("livekit_server_keys.yaml")
# Keys the livekit-server Helm chart reads itself from its `livekit:` block (it passes --disable-strict-config).
HELM_ONLY_TURN_KEYS = {"secretName", "serviceType", "loadBalancerAnnotations"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml("livekit.yaml")


def test_key_tree_is_the_servers() -> None:
    """Spot checks that the committed tree was extracted through embedded/inline structs correctly."""
    assert {
        "port",
        "rtc",
        "redis",
        "keys",
        "turn",
        "room",
        "webhook",
        "logging",
        "agents",
    } <= SERVER_KEYS.keys()
    assert SERVER_KEYS["rtc"]["port_range_start"] == "scalar"  # inlined rtcconfig.RTCConfig
    assert "turn_servers" in SERVER_KEYS["rtc"]  # livekit's own RTCConfig wrapper
    assert SERVER_KEYS["logging"]["level"] == "scalar"  # inlined logger.Config
    assert "pion_level" in SERVER_KEYS["logging"]
    assert SERVER_KEYS["agents"]["target_load"] == "scalar"
    assert SERVER_KEYS["keys"] == "map"
    assert SERVER_KEYS["sip"] == {}  # an empty struct: only `sip: {}` is accepted


def test_livekit_yaml_uses_only_known_keys(config: dict[str, Any]) -> None:
    assert unknown_keys(config, SERVER_KEYS) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.__setitem__("loging", c.pop("logging")), "loging: unknown key"),
        (lambda c: c["rtc"].__setitem__("port_range_strat", 50000), "rtc.port_range_strat: unknown key"),
        (lambda c: c["turn"].__setitem__("tls_prot", 5349), "turn.tls_prot: unknown key"),
        (lambda c: c.__setitem__("log_levle", "info"), "log_levle: unknown key"),
        (lambda c: c["rtc"].__setitem__("turn_servers", [{"hostt": "x"}]), "rtc.turn_servers[0].hostt"),
        (lambda c: c.__setitem__("sip", {"port": 5060}), "sip.port: unknown key"),
        (
            lambda c: c["room"].__setitem__("empty_timeout", {"seconds": 5}),
            "room.empty_timeout: expected a value",
        ),
    ],
)
def test_misspelled_keys_are_caught(config: dict[str, Any], mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(config)
    mutate(broken)
    problems = unknown_keys(broken, SERVER_KEYS)
    assert any(p.startswith(expected) for p in problems), problems


def test_production_settings(config: dict[str, Any]) -> None:
    assert config["port"] == 7880
    assert not config.get("development"), "development mode is insecure (pprof, devkey)"
    rtc = config["rtc"]
    assert rtc["tcp_port"] == 7881
    assert 1024 < rtc["port_range_start"] < rtc["port_range_end"] <= 65535
    assert "udp_port" not in rtc, "use either the UDP range or a UDP mux port"
    assert rtc["use_external_ip"] is True
    assert config["redis"]["address"], "SIP and multi-node need redis"
    turn = config["turn"]
    assert turn["enabled"] and turn["domain"] and turn["tls_port"] and turn["udp_port"]
    assert turn["external_tls"] or (turn.get("cert_file") and turn.get("key_file"))
    assert config["logging"]["level"] in {"debug", "info", "warn", "error"}
    assert 0 < config["agents"]["target_load"] <= 1
    assert config["room"]["empty_timeout"] > 0 and config["room"]["departure_timeout"] > 0


def test_placeholder_keys_only(config: dict[str, Any]) -> None:
    """The committed keys are an obvious placeholder, long enough for the server's 32-char minimum."""
    assert config["keys"], "the server needs at least one key (compose replaces them via LIVEKIT_KEYS)"
    for key, secret in config["keys"].items():
        assert "changeme" in key.lower(), key
        assert "CHANGE-ME" in secret, "only placeholders may be committed"
        assert len(secret) >= 32
    webhook = config["webhook"]
    if webhook.get("urls"):
        assert webhook["api_key"] in config["keys"], "the server refuses to start with an unknown webhook key"


def test_media_port_ranges_do_not_overlap(config: dict[str, Any]) -> None:
    """livekit-server, its TURN relay and livekit-sip share the host network in docker-compose.yml."""
    sip = load_yaml("infra/sip/config.yaml")
    sip_start, sip_end = (int(p) for p in str(sip["rtp_port"]).split("-"))
    ranges = {
        "rtc": (config["rtc"]["port_range_start"], config["rtc"]["port_range_end"]),
        "turn relay": (config["turn"]["relay_range_start"], config["turn"]["relay_range_end"]),
        "sip rtp": (sip_start, sip_end),
    }
    singles = {
        "http": config["port"],
        "rtc tcp": config["rtc"]["tcp_port"],
        "turn tls": config["turn"]["tls_port"],
        "turn udp": config["turn"]["udp_port"],
        "sip": sip["sip_port"],
        "sip health": sip["health_port"],
        "sip prometheus": sip["prometheus_port"],
        "redis": int(config["redis"]["address"].rsplit(":", 1)[1]),
        "web": 8080,
    }
    assert len(set(singles.values())) == len(singles), singles
    items = sorted(ranges.items(), key=lambda kv: kv[1])
    for (name_a, (_, end_a)), (name_b, (start_b, _)) in itertools.pairwise(items):
        assert end_a < start_b, f"{name_a} overlaps {name_b}"
    for name, port in singles.items():
        for range_name, (start, end) in ranges.items():
            assert not start <= port <= end, f"{name} port {port} inside the {range_name} range"


def test_helm_values_livekit_block_uses_only_known_keys() -> None:
    values = load_yaml("infra/k8s/livekit-server-values.yaml")
    block = copy.deepcopy(values["livekit"])
    for key in HELM_ONLY_TURN_KEYS:
        block.get("turn", {}).pop(key, None)
    assert unknown_keys(block, SERVER_KEYS) == []
    block["rtc"]["use_extrenal_ip"] = True
    assert unknown_keys(block, SERVER_KEYS) == ["rtc.use_extrenal_ip: unknown key"]
