"""docker-compose.yml: the Compose Specification JSON schema (as vendored by check-jsonschema, offline) and
the properties the deployment depends on (drain grace, GPU reservation, health checks, host networking)."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest

from agent.settings import Settings
from tests.infra.helpers import ROOT, interpolate, load_yaml, parse_duration

DEFAULT_DRAIN = Settings.model_fields["drain_timeout"].default
DEFAULT_WORKER_PORT = Settings.model_fields["worker_port"].default
SERVICES = {"redis", "livekit-server", "livekit-sip", "agent", "web"}


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    return json.loads(text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml("docker-compose.yml")


def schema_errors(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source, short syntax."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def _healthcheck_port(service: dict[str, Any]) -> int | None:
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    m = re.search(r"127\.0\.0\.1:(\d+)", test) or re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)", test)
    return int(m.group(1)) if m else None


def compose_problems(compose: dict[str, Any]) -> list[str]:
    """What would break the deployment described in docs/deploy.md; empty when all is well."""
    problems: list[str] = []
    services = compose.get("services", {})
    if set(services) != SERVICES:
        problems.append(f"services: {sorted(services)} != {sorted(SERVICES)}")
        return problems
    server_conf = load_yaml("livekit.yaml")

    for name in ("redis", "livekit-server", "livekit-sip"):
        if services[name].get("network_mode") != "host":
            problems.append(f"{name}: needs network_mode: host (UDP port ranges, loopback redis)")

    server = services["livekit-server"]
    if server.get("command") != ["--config", "/etc/livekit.yaml"]:
        problems.append("livekit-server: command must be --config /etc/livekit.yaml")
    if _volume_targets(server).get("/etc/livekit.yaml") != "./livekit.yaml":
        problems.append("livekit-server: ./livekit.yaml must be mounted at /etc/livekit.yaml")
    keys = _environment(server).get("LIVEKIT_KEYS", "")
    if "${LIVEKIT_API_KEY" not in keys or "${LIVEKIT_API_SECRET" not in keys:
        problems.append("livekit-server: LIVEKIT_KEYS must come from LIVEKIT_API_KEY/SECRET of .env")

    sip = services["livekit-sip"]
    if _volume_targets(sip).get("/sip/config.yaml") != "./infra/sip/config.yaml":
        problems.append("livekit-sip: ./infra/sip/config.yaml must be mounted at /sip/config.yaml")
    if _healthcheck_port(sip) != load_yaml("infra/sip/config.yaml")["health_port"]:
        problems.append("livekit-sip: healthcheck must probe health_port of infra/sip/config.yaml")

    for name, command in (("agent", ["voice-agent", "start"]), ("web", ["voice-agent", "web"])):
        svc = services[name]
        env = _environment(svc)
        if svc.get("command") != command:
            problems.append(f"{name}: command must be {command}")
        if svc.get("build", {}).get("dockerfile") != "infra/docker/Dockerfile":
            problems.append(f"{name}: must build infra/docker/Dockerfile")
        if svc.get("env_file") != ".env":
            problems.append(f"{name}: env_file must be .env (secrets stay out of the compose file)")
        url = urlparse(env.get("LIVEKIT_URL", ""))
        if url.hostname != "host.docker.internal" or url.port != server_conf["port"]:
            problems.append(
                f"{name}: LIVEKIT_URL must reach the host-network server via host.docker.internal"
            )
        if "host.docker.internal:host-gateway" not in svc.get("extra_hosts", []):
            problems.append(f"{name}: extra_hosts needs host.docker.internal:host-gateway")
        test = svc.get("healthcheck", {}).get("test", [])
        if not test or test[0] != "CMD" or test[1] != "python":
            problems.append(f"{name}: healthcheck must use the image's python (no curl/wget in it)")
        for var, value in env.items():
            if re.search(r"SECRET|API_KEY|PASSWORD", var) and not value.startswith("${"):
                problems.append(f"{name}: {var} must not be set literally")

    agent = services["agent"]
    env = _environment(agent)
    drain = float(env.get("VOICE_AGENT_DRAIN_TIMEOUT", DEFAULT_DRAIN))
    grace = parse_duration(agent.get("stop_grace_period", "10s"))
    if grace <= drain:
        problems.append(f"agent: stop_grace_period {grace}s must exceed the drain timeout {drain}s")
    worker_port = int(env.get("VOICE_AGENT_WORKER_PORT", DEFAULT_WORKER_PORT))
    if _healthcheck_port(agent) != worker_port:
        problems.append("agent: healthcheck must probe the worker health port")
    deploy = agent.get("deploy", {})
    if not re.fullmatch(r"\$\{AGENT_REPLICAS:-[1-9]\d*\}", str(deploy.get("replicas", ""))):
        problems.append("agent: deploy.replicas must be ${AGENT_REPLICAS:-N}")
    devices = deploy.get("resources", {}).get("reservations", {}).get("devices", [])
    if not any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices):
        problems.append("agent: needs an nvidia GPU reservation")
    if env.get("HF_HOME") != "/models" or "/models" not in _volume_targets(agent):
        problems.append("agent: HF_HOME=/models must be a volume (models download once)")

    web = services["web"]
    if _environment(web).get("VOICE_AGENT_HOST") != "0.0.0.0":
        problems.append("web: VOICE_AGENT_HOST must be 0.0.0.0 in a container")
    if not any(str(p).endswith(":8080") for p in web.get("ports", [])):
        problems.append("web: port 8080 must be published")
    if "/healthz" not in " ".join(web.get("healthcheck", {}).get("test", [])):
        problems.append("web: healthcheck must probe /healthz")
    return problems


def test_schema_accepts_compose_file(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    assert schema_errors(compose, compose_schema) == []
    assert schema_errors(interpolate(compose), compose_schema) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["agent"].__setitem__("stop_grace_periode", "6m"),
        lambda c: c["services"]["agent"]["deploy"].__setitem__("replica", 2),
        lambda c: c["services"]["web"].__setitem__("ports", "8080:8080"),
        lambda c: c["services"]["agent"]["deploy"]["resources"]["reservations"]["devices"][0].__setitem__(
            "capabilitys", ["gpu"]
        ),
        lambda c: c["services"]["agent"]["healthcheck"].__setitem__("test", {"cmd": "true"}),
        lambda c: c.__setitem__("service", c.pop("services")),
    ],
)
def test_schema_rejects_mistakes(
    compose: dict[str, Any], compose_schema: dict[str, Any], mutate: Any
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert schema_errors(broken, compose_schema)


def test_deployment_properties(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["agent"].__setitem__("stop_grace_period", "5m"), "stop_grace_period"),
        (lambda s: s["agent"].pop("stop_grace_period"), "stop_grace_period"),
        (lambda s: s["agent"]["deploy"].__setitem__("replicas", 2), "deploy.replicas"),
        (lambda s: s["agent"]["deploy"].pop("resources"), "GPU reservation"),
        (lambda s: s["agent"]["healthcheck"].__setitem__("test", ["CMD", "curl", "-f", "x"]), "python"),
        (lambda s: s["agent"]["environment"].__setitem__("VOICE_AGENT_WORKER_PORT", "9000"), "worker health"),
        (lambda s: s["agent"]["environment"].__setitem__("LIVEKIT_API_SECRET", "s3cr3t"), "literally"),
        (lambda s: s["agent"].pop("extra_hosts"), "host-gateway"),
        (lambda s: s["livekit-sip"].pop("network_mode"), "network_mode: host"),
        (lambda s: s["web"]["environment"].pop("VOICE_AGENT_HOST"), "0.0.0.0"),
    ],
)
def test_deployment_problems_are_caught(compose: dict[str, Any], mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken["services"])
    problems = compose_problems(broken)
    assert any(expected in p for p in problems), problems


def test_mounted_and_built_files_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for source in _volume_targets(service).values():
            if source.startswith("./"):
                assert (ROOT / source).is_file(), source
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_durations() -> None:
    assert parse_duration("330s") == 330
    assert parse_duration("1m30s") == 90
    assert parse_duration("15m") == 900
    with pytest.raises(ValueError):
        parse_duration("6 minutes")


def test_interpolation() -> None:
    assert interpolate("${AGENT_REPLICAS:-1}") == "1"
    assert interpolate("${AGENT_REPLICAS:-1}", {"AGENT_REPLICAS": "3"}) == "3"
    assert interpolate("${LIVEKIT_API_KEY:?set it}: $${x}") == "dummy: ${x}"
