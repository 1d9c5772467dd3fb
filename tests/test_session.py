"""One pipeline assembly: every transport builds its session with `agent.session.build_session`."""

from __future__ import annotations

import ast
from pathlib import Path

from livekit.plugins import chatterbox

from agent.models import Models
from agent.session import build_session
from tests.conftest import make_settings

AGENT = Path(__file__).resolve().parents[1] / "agent"


def calls_in(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def test_only_session_module_constructs_the_pipeline() -> None:
    pipeline_parts = {"AgentSession", "STT", "TTS", "LLM"}
    for path in AGENT.rglob("*.py"):
        if path.name == "session.py":
            continue
        assert not pipeline_parts & calls_in(path), f"{path.relative_to(AGENT)} builds pipeline parts itself"


def test_both_transports_use_build_session() -> None:
    for transport in ("worker.py", "embedded/peer.py"):
        assert "build_session" in calls_in(AGENT / transport), transport


def test_tts_settings_reach_the_tts(models: Models) -> None:
    settings = make_settings(
        tts_chunk_tokens=(10, 30),
        tts_normalize_text=False,
        tts_watermark=False,
        tts_temperature=0.6,
        first_fragment_min_words=2,
    )
    tts = build_session(settings, models).tts
    assert isinstance(tts, chatterbox.TTS)
    opts = tts._opts
    assert opts.chunk_tokens == (10, 30)
    assert opts.normalize_text is False
    assert opts.watermark is False
    assert opts.temperature == 0.6
    assert opts.first_fragment_min_words == 2
