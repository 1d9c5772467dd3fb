"""The local LiveKit stack: the config derived from the shipped livekit.yaml keeps its keys (only addresses,
ports and secrets change), the real servers start from it and stop by their own pids, and missing pieces give
one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.cli import main
from agent.errors import StartupError
from agent.localstack import (
    LocalStack,
    StackAddresses,
    derive_config,
    find_binary,
    http_answers,
    redis_answers,
)
from tests.workers import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "livekit.yaml").read_text())
# what the derived config may add to the shipped one: addresses the shipped file leaves to STUN discovery
ADDED = {"bind_addresses", "rtc.node_ip", "rtc.enable_loopback_candidate", "turn.bind_addresses"}


def flat(config: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "keys":
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def test_derived_config_keeps_the_shipped_keys_and_changes_only_addresses_ports_and_secrets() -> None:
    where = StackAddresses(node_ip="10.203.0.1", http_port=17880, rtc_tcp_port=17881, redis_port=16379)
    derived = flat(derive_config(SHIPPED, where, "APItest", "s" * 32))
    shipped = flat(SHIPPED)
    assert set(derived) - set(shipped) == ADDED
    assert set(shipped) <= set(derived)
    changed = {k for k in shipped if derived[k] != shipped[k]}
    assert changed <= {
        "port", "rtc.tcp_port", "rtc.port_range_start", "rtc.port_range_end", "rtc.use_external_ip",
        "redis.address", "keys", "turn.udp_port", "turn.tls_port", "turn.relay_range_start",
        "turn.relay_range_end", "webhook.api_key",
    }, changed
    assert derived["keys"] == {"APItest": "s" * 32}
    assert derived["rtc.node_ip"] == "10.203.0.1" and derived["rtc.use_external_ip"] is False
    assert derived["redis.address"] == "127.0.0.1:16379" and derived["port"] == 17880
    assert derived["rtc.enable_loopback_candidate"] is False  # candidates name only the node IP


def test_the_stack_starts_answers_and_stops_exactly_its_processes(livekit_stack: LocalStack) -> None:
    assert http_answers(livekit_stack.http_url + "/")
    assert redis_answers(livekit_stack.where.bind_ip, livekit_stack.where.redis_port)
    assert [c.name for c in livekit_stack.children] == ["redis-server", "livekit-server"]
    config = livekit_stack.workdir / "livekit.yaml"
    assert config.stat().st_mode & 0o077 == 0, "the config holds the secret: owner-only"
    assert livekit_stack.api_secret not in livekit_stack.server.log_tail(10**6), "no secret in the server log"


def test_stop_ends_only_the_pids_it_started(tmp_path: Path) -> None:
    stack = LocalStack(ROOT / "livekit.yaml", tmp_path, StackAddresses(
        http_port=free_port(), rtc_tcp_port=free_port(), rtc_udp_ports=(42000, 42010), turn_udp_port=free_port(),
        turn_tls_port=free_port(), turn_relay_ports=(42100, 42110), redis_port=free_port(),
    )).start()
    processes = [c.process for c in stack.children]
    assert all(p.poll() is None for p in processes)
    stack.stop()
    assert all(p.poll() is not None for p in processes) and not stack.children


def test_a_missing_server_binary_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.localstack.sys.executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StartupError, match="livekit-server not found: `make stack`"):
        find_binary("livekit-server")


def test_stack_without_its_config_file_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GROQ_API_KEY", "test-key")
    assert main(["stack", "--config", "missing.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["voice-agent: error: missing.yaml not found: run `voice-agent stack` from the repository"]
