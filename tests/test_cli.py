"""Startup problems print one clear line and exit non-zero (the real console script, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICE_AGENT_", "LIVEKIT_")) and k != "GROQ_API_KEY"
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "voice-agent"), "--log-level", "WARNING", *args],
        env=clean | {"HF_HUB_OFFLINE": "1"} | env,
        check=False,
        cwd=ROOT / "tests",  # no .env there
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("voice-agent: error: ")
    for needle in needles:
        assert needle in last


def test_missing_groq_key() -> None:
    proc = run_cli("serve", env={})
    assert_one_line_error(proc, "GROQ_API_KEY is not set")


def test_invalid_setting_names_the_variable() -> None:
    proc = run_cli("serve", env={"GROQ_API_KEY": "k", "VOICE_AGENT_PORT": "not-a-port"})
    assert_one_line_error(proc, "VOICE_AGENT_PORT")


def test_cuda_requested_without_gpu() -> None:
    proc = run_cli("serve", env={"GROQ_API_KEY": "k", "VOICE_AGENT_DEVICE": "cuda"})
    assert_one_line_error(proc, "VOICE_AGENT_DEVICE=cuda")


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"VOICE_AGENT_STT_MODEL": "/nonexistent/model.nemo", "VOICE_AGENT_TTS_MODEL": "synthetic-tiny"},
            ("/nonexistent/model.nemo", "VOICE_AGENT_STT_MODEL"),
        ),
        (
            {"VOICE_AGENT_STT_MODEL": "synthetic-tiny", "VOICE_AGENT_TTS_MODEL": "ResembleAI/chatterbox"},
            ("ResembleAI/chatterbox", "VOICE_AGENT_TTS_MODEL"),
        ),
    ],
)
def test_missing_model(env: dict[str, str], needles: tuple[str, ...]) -> None:
    proc = run_cli("serve", env={"GROQ_API_KEY": "k", "VOICE_AGENT_DEVICE": "cpu"} | env)
    assert_one_line_error(proc, *needles)


def test_self_hosted_llm_needs_no_groq_key_and_check_loads_models() -> None:
    proc = run_cli(
        "check",
        env={
            "VOICE_AGENT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
            "VOICE_AGENT_STT_MODEL": "synthetic-tiny",
            "VOICE_AGENT_TTS_MODEL": "synthetic-tiny",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert "stt: synthetic-tiny" in proc.stdout and proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("command", ["start", "dev", "web"])
def test_livekit_modes_need_the_server_and_its_keys(command: str) -> None:
    proc = run_cli(command, env={"GROQ_API_KEY": "k", "LIVEKIT_URL": "ws://127.0.0.1:7880"})
    assert_one_line_error(proc, "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


def test_web_needs_no_llm_key_and_rejects_bad_livekit_settings() -> None:
    proc = run_cli(
        "web", env={"LIVEKIT_URL": "ws://x", "LIVEKIT_API_KEY": "k", "VOICE_AGENT_TOKEN_TTL": "-1"}
    )
    assert_one_line_error(proc, "VOICE_AGENT_TOKEN_TTL")
