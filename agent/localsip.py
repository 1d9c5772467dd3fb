"""livekit-sip next to a `LocalStack`: built from its Go module by `make test`, configured from the shipped
`infra/sip/config.yaml` (same keys; addresses, ports and the stack's key and secret differ), stopped by pid
with the stack. Phone callers (SIP trunks, SIPp in the tests) reach it on `SipAddresses.ip:sip_port`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .localstack import (
    ChildProcess,
    LocalStack,
    find_binary,
    http_answers,
    start_child,
    wait_until,
    without_livekit_env,
)


@dataclass(frozen=True)
class SipAddresses:
    """`ip` is where livekit-sip listens for SIP and the address its SDP names for RTP."""

    ip: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_ports: tuple[int, int] = (10000, 10100)
    health_port: int = 8091
    prometheus_port: int = 6790

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.ip}:{self.sip_port}"


def derive_sip_config(shipped: dict[str, Any], where: SipAddresses, stack: LocalStack) -> dict[str, Any]:
    """The shipped livekit-sip config pointed at this stack's server and redis."""
    config = copy.deepcopy(shipped)
    config.update(
        api_key=stack.api_key,
        api_secret=stack.api_secret,
        ws_url=stack.url,
        sip_port=where.sip_port,
        listen_ip=where.ip,
        rtp_port=f"{where.rtp_ports[0]}-{where.rtp_ports[1]}",
        use_external_ip=False,  # no STUN lookup of a public address: advertise `ip`
        nat_1_to_1_ip=where.ip,
        health_port=where.health_port,
        prometheus_port=where.prometheus_port,
        # outbound calls are refused above this CPU load; a small machine running models is always busy
        max_cpu_utilization=1.0,
    )
    config["redis"]["address"] = f"{stack.where.bind_ip}:{stack.where.redis_port}"
    return config


def start_sip(
    stack: LocalStack, shipped_config: Path, where: SipAddresses, timeout: float = 30.0
) -> ChildProcess:
    """Start livekit-sip as one more child of `stack` (so `stack.stop()` ends it first) and wait until its
    health endpoint answers."""
    binary = find_binary("livekit-sip")
    config = derive_sip_config(yaml.safe_load(shipped_config.read_text()), where, stack)
    config_path = stack.workdir / "sip.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    config_path.chmod(0o600)  # it holds the secret
    sip = start_child(
        "livekit-sip",
        [binary, "--config", str(config_path)],
        stack.workdir / "livekit-sip.log",
        env=without_livekit_env(),
    )
    stack.children.append(sip)
    wait_until(
        sip, lambda: http_answers(f"http://{where.ip}:{where.health_port}/"), timeout, "report healthy"
    )
    return sip
