"""`voice-agent conversations list|show|export` against a store with calls in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.call_info import CallInfo
from agent.cli import main
from agent.conversations.database import Entry
from agent.conversations.store import ConversationStore
from agent.settings import Settings

NOW = datetime.now(UTC)
PHONE = CallInfo(
    session_id="AJ_phone",
    transport="phone",
    caller_number="+15550100200",
    trunk_number="+15550100000",
    direction="inbound",
)


@pytest.fixture
def seeded(store_settings: Settings, backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls saved; the CLI reads the same database through the environment."""
    for key, value in backend.items():
        monkeypatch.setenv(f"VOICE_AGENT_{key.upper()}", str(value))
    store = ConversationStore.open(store_settings)
    store.begin_call(CallInfo(session_id="peer_old", transport="embedded"), NOW - timedelta(days=2))
    store.begin_call(PHONE, NOW)
    store.add(Entry(PHONE.session_id, 0, NOW, "message", role="agent", text="Hello, thanks for calling."))
    store.add(Entry(PHONE.session_id, 1, NOW, "message", role="user", text="Is it sunny?", data={"e": 1}))
    store.add(Entry(PHONE.session_id, 2, NOW, "message", role="agent", text="It is", interrupted=True))
    store.end_call(PHONE.session_id, NOW, "participant_disconnected")
    assert store.writer.flush()
    store.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--log-level", "WARNING", "conversations", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("seeded")
def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert "phone" in lines[1] and "participant_disconnected" in lines[1] and lines[1].endswith("AJ_phone")
    assert lines[2].endswith("peer_old")
    code, out, _ = run(capsys, "list", "--limit", "1", "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)["conversations"]] == ["AJ_phone"]


@pytest.mark.usefixtures("seeded")
def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "AJ_phone")
    assert code == 0
    assert "caller number: +15550100200" in out and "trunk number: +15550100000" in out
    assert "user: Is it sunny?" in out and "agent: It is [interrupted]" in out
    code, out, _ = run(capsys, "show", "AJ_phone", "--json")
    call = json.loads(out)
    assert [e["text"] for e in call["transcript"]] == ["Hello, thanks for calling.", "Is it sunny?", "It is"]
    assert call["transcript"][1]["metrics"] == {"e": 1}


@pytest.mark.usefixtures("seeded")
def test_an_unknown_id_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "nobody")
    assert code == 2 and not out
    assert err.strip().splitlines() == [
        "voice-agent: error: no saved conversation 'nobody' (see `voice-agent conversations list`)"
    ]


@pytest.mark.usefixtures("seeded")
def test_export_is_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "export")
    calls = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [c["id"] for c in calls] == ["peer_old", "AJ_phone"]
    assert len(calls[1]["transcript"]) == 3
    code, out, _ = run(capsys, "export", "--since", (NOW - timedelta(days=1)).date().isoformat())
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["AJ_phone"]
