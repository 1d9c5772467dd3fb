"""The deployment docs only name files, settings and compose variables that exist."""

from __future__ import annotations

import re

import pytest

from agent.settings import Settings
from tests.infra.helpers import ROOT, load_yaml

DOCS = ["README.md", "docs/deploy.md", "infra/k8s/README.md", "infra/sip/README.md"]
SETTINGS_ENV = {f"VOICE_AGENT_{name.upper()}" for name in Settings.model_fields}


def _paths(text: str) -> set[str]:
    found = re.findall(r"(?<![\w/.-])((?:infra|tests|docs|agent|web)/[\w./-]*[\w/]|livekit\.yaml|"
                       r"docker-compose\.yml)", text)  # fmt: skip
    return {p.rstrip("/") for p in found}


@pytest.mark.parametrize("doc", DOCS)
def test_named_files_exist(doc: str) -> None:
    text = (ROOT / doc).read_text()
    base = (ROOT / doc).parent
    missing = [p for p in _paths(text) if not (ROOT / p).exists() and not (base / p).exists()]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS)
def test_named_settings_exist(doc: str) -> None:
    named = set(re.findall(r"VOICE_AGENT_[A-Z_]+[A-Z]", (ROOT / doc).read_text()))
    assert named - SETTINGS_ENV == set()


def test_compose_variables_are_documented() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)[:}]", compose_text)) - {
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
    }
    assert variables == {"AGENT_REPLICAS", "AGENT_GPU"}
    deploy = (ROOT / "docs/deploy.md").read_text()
    assert all(v in deploy for v in variables)
    assert (
        "stop_grace_period: " + load_yaml("docker-compose.yml")["services"]["agent"]["stop_grace_period"]
        in deploy
    )


def test_path_finder_sees_missing_files() -> None:
    assert _paths("see infra/sip/nope.json and livekit.yaml") == {"infra/sip/nope.json", "livekit.yaml"}
