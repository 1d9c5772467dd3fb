"""Kubernetes manifests: OpenAPI validation with kubernetes-validate (bundled schemas, offline, strict: unknown
fields fail) plus the properties that keep calls alive and secrets out of manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from agent.settings import Settings
from tests.infra.helpers import ROOT, load_yaml, load_yaml_docs

K8S = ROOT / "infra/k8s"
K8S_VERSION = "1.33.0"  # a schema version bundled by kubernetes-validate; fields used exist since 1.18
MANIFESTS = sorted(
    p for p in K8S.glob("*.yaml") if p.name not in {"kustomization.yaml", "livekit-server-values.yaml"}
)
DRAIN_MARGIN_S = 30


def _docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in MANIFESTS for d in load_yaml_docs(p)]


def _one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for _, d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize(("file", "doc"), _docs(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid(file: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"].__setitem__("terminationGracePeriodSecond", 360),
        lambda d: d["spec"].__setitem__("replicas", "one"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].pop("port"),
    ],
)
def test_validator_rejects_mistakes(mutate: Any) -> None:
    broken = copy.deepcopy(_one("Deployment", "voice-agent"))
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization() -> None:
    kustomization = load_yaml("infra/k8s/kustomization.yaml")
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    assert "secret.example.yaml" not in resources, "applying it would overwrite the real Secrets"
    image_names = {i["name"] for i in kustomization["images"]}
    for _, doc in _docs():
        if doc["kind"] == "Deployment" and doc["metadata"].get("namespace") is None:
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["image"] in image_names


def _container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return match


def agent_problems(deployment: dict[str, Any], config: dict[str, str]) -> list[str]:
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    drain = float(config.get("VOICE_AGENT_DRAIN_TIMEOUT", Settings.model_fields["drain_timeout"].default))
    if pod.get("terminationGracePeriodSeconds", 30) < drain + DRAIN_MARGIN_S:
        problems.append("terminationGracePeriodSeconds must cover the drain timeout plus a margin")
    if container.get("command") != ["voice-agent", "start"]:
        problems.append("command must be voice-agent start")
    for part in ("requests", "limits"):
        if str(container.get("resources", {}).get(part, {}).get("nvidia.com/gpu")) != "1":
            problems.append(f"resources.{part} needs nvidia.com/gpu: 1 (one GPU per replica)")
    worker_port = int(config.get("VOICE_AGENT_WORKER_PORT", Settings.model_fields["worker_port"].default))
    for probe in ("livenessProbe", "readinessProbe"):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != "/" or _container_port(container, get.get("port", 0)) != worker_port:
            problems.append(f"{probe} must GET / on the worker health port {worker_port}")
    if {"configMapRef": {"name": "voice-agent-config"}} not in container.get("envFrom", []):
        problems.append("envFrom must load the voice-agent-config ConfigMap")
    env = {e["name"]: e for e in container.get("env", [])}
    for name in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "GROQ_API_KEY"):
        if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
            problems.append(f"{name} must come from a Secret")
    for name, e in env.items():
        if ("SECRET" in name or "API_KEY" in name) and "value" in e:
            problems.append(f"{name} must not be inlined")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    if config.get("HF_HOME") not in mounts:
        problems.append("HF_HOME must be a mounted volume (model cache)")
    return problems


def test_agent_deployment() -> None:
    config = _one("ConfigMap", "voice-agent-config")["data"]
    assert agent_problems(_one("Deployment", "voice-agent"), config) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda pod: pod.__setitem__("terminationGracePeriodSeconds", 300), "terminationGracePeriodSeconds"),
        (lambda pod: pod.pop("terminationGracePeriodSeconds"), "terminationGracePeriodSeconds"),
        (lambda pod: pod["containers"][0]["resources"]["limits"].pop("nvidia.com/gpu"), "nvidia.com/gpu"),
        (lambda pod: pod["containers"][0]["ports"][0].__setitem__("containerPort", 8080), "health port"),
        (
            lambda pod: pod["containers"][0]["env"].__setitem__(
                1, {"name": "LIVEKIT_API_SECRET", "value": "x"}
            ),
            "inlined",
        ),
    ],
)
def test_agent_problems_are_caught(mutate: Any, expected: str) -> None:
    deployment = copy.deepcopy(_one("Deployment", "voice-agent"))
    mutate(deployment["spec"]["template"]["spec"])
    problems = agent_problems(deployment, _one("ConfigMap", "voice-agent-config")["data"])
    assert any(expected in p for p in problems), problems


def test_configmap_holds_no_secrets() -> None:
    data = _one("ConfigMap", "voice-agent-config")["data"]
    assert not [k for k in data if "SECRET" in k or "API_KEY" in k]
    assert data["VOICE_AGENT_AGENT_NAME"] == Settings.model_fields["agent_name"].default
    assert data["LIVEKIT_URL"].startswith(("ws://", "wss://"))
    assert data["VOICE_AGENT_LIVEKIT_PUBLIC_URL"].startswith("wss://"), "browsers on https need wss"
    settings = Settings(_env_file=None, **{k.lower().removeprefix("voice_agent_"): v for k, v in data.items()
                                            if k.startswith("VOICE_AGENT_")})  # fmt: skip
    assert settings.max_sessions >= 1


def test_web() -> None:
    deployment = _one("Deployment", "voice-agent-web")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["voice-agent", "web"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VOICE_AGENT_HOST"]["value"] == "0.0.0.0"
    port = int(env["VOICE_AGENT_PORT"]["value"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert _container_port(container, container[probe]["httpGet"]["port"]) == port
    assert "nvidia.com/gpu" not in str(container["resources"])
    service = _one("Service", "voice-agent-web")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_example_secrets_are_placeholders() -> None:
    for doc in load_yaml_docs("infra/k8s/secret.example.yaml"):
        for key, value in doc["stringData"].items():
            assert "change" in value.lower(), f"{doc['metadata']['name']}.{key} looks real"


def test_livekit_sip_and_server_values() -> None:
    sip = _one("Deployment", "livekit-sip")["spec"]["template"]["spec"]
    assert sip["hostNetwork"] is True and sip["dnsPolicy"] == "ClusterFirstWithHostNet"
    values = load_yaml("infra/k8s/livekit-server-values.yaml")
    assert values["podHostNetwork"] is True
    assert values["storeKeysInSecret"]["enabled"] and "keys" not in values["livekit"]
    assert values["terminationGracePeriodSeconds"] >= 3600
    assert values["livekit"]["redis"]["address"]


def test_every_file_is_covered() -> None:
    known = {p.name for p in MANIFESTS} | {"kustomization.yaml", "livekit-server-values.yaml", "README.md"}
    assert {p.name for p in Path(K8S).iterdir()} <= known
