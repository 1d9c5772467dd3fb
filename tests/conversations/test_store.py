"""The conversation store on SQLite and on a real PostgreSQL: migrations, writes through the writer thread,
reads, retention, concurrent writers, failed writes, health."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from agent.call_info import CallInfo
from agent.conversations.database import Entry, iso, open_database
from agent.conversations.store import ConversationStore, acquire, current, release
from agent.errors import StartupError
from agent.settings import Settings
from tests.conftest import make_settings
from tests.conversations.conftest import PASSWORD

NOW = datetime.now(UTC)
PHONE = CallInfo(
    session_id="AJ_phone1",
    transport="phone",
    room="call-_+15550100200_abc",
    participant="sip_+15550100200",
    caller_number="+15550100200",
    trunk_number="+15550100000",
    direction="inbound",
)


def message(call_id: str, seq: int, role: str, text: str, **fields: object) -> Entry:
    return Entry(
        call_id=call_id,
        seq=seq,
        at=NOW + timedelta(seconds=seq),
        kind="message",
        role=role,
        text=text,
        **fields,
    )  # type: ignore[arg-type]


def test_migrations_create_the_schema_and_run_again_harmlessly(store_settings: Settings) -> None:
    database = open_database(store_settings)
    try:
        assert {"calls", "entries", "alembic_version"} <= set(inspect(database.engine).get_table_names())
        database.migrate()  # already at the newest revision
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
    finally:
        database.close()


def test_a_call_is_written_and_read_back(store_settings: Settings) -> None:
    store = ConversationStore.open(store_settings)
    try:
        store.begin_call(PHONE, NOW)
        store.add(message(PHONE.session_id, 0, "agent", "Hello, thanks for calling."))
        store.add(
            message(
                PHONE.session_id,
                1,
                "user",
                "What is the weather?",
                data={"transcription_delay": 0.21, "end_of_turn_delay": 0.6},
            )
        )
        store.add(
            message(
                PHONE.session_id,
                2,
                "agent",
                "It is sunny and",
                interrupted=True,
                data={"llm_node_ttft": 0.3, "e2e_latency": 1.1},
            )
        )
        store.add(
            Entry(
                PHONE.session_id, 3, NOW + timedelta(seconds=3), "false_interruption", data={"resumed": True}
            )
        )
        store.end_call(PHONE.session_id, NOW + timedelta(seconds=9), "participant_disconnected")
        assert store.writer.flush()
        call = store.database.get_call(PHONE.session_id)
    finally:
        store.close()
    assert call is not None
    assert call["caller_number"] == "+15550100200" and call["trunk_number"] == "+15550100000"
    assert call["direction"] == "inbound" and call["transport"] == "phone"
    assert call["started_at"] == iso(NOW)
    assert call["end_reason"] == "participant_disconnected"
    assert call["ended_at"] == iso(NOW + timedelta(seconds=9))
    transcript = call["transcript"]
    assert [(e["role"], e["text"]) for e in transcript[:3]] == [
        ("agent", "Hello, thanks for calling."),
        ("user", "What is the weather?"),
        ("agent", "It is sunny and"),
    ]
    assert transcript[1]["metrics"] == {"transcription_delay": 0.21, "end_of_turn_delay": 0.6}
    assert transcript[2]["interrupted"] and not transcript[1]["interrupted"]
    assert transcript[2]["metrics"]["e2e_latency"] == 1.1
    assert transcript[3] == {
        "seq": 3,
        "at": iso(NOW + timedelta(seconds=3)),
        "kind": "false_interruption",
        "text": None,
        "details": {"resumed": True},
    }


def test_listing_is_newest_first_paged_and_export_filters(store_settings: Settings) -> None:
    store = ConversationStore.open(store_settings)
    try:
        for i in range(5):
            store.begin_call(
                CallInfo(session_id=f"peer_{i}", transport="embedded"), NOW - timedelta(hours=5 - i)
            )
            store.add(message(f"peer_{i}", 0, "user", f"question {i}"))
        store.add(message("peer_4", 1, "agent", "answer"))
        assert store.writer.flush()
        database = store.database
        first = database.list_calls(2)
        assert [c["id"] for c in first] == ["peer_4", "peer_3"]
        assert [c["messages"] for c in first] == [2, 1]
        before = datetime.fromisoformat(first[-1]["started_at"])
        assert [c["id"] for c in database.list_calls(10, before)] == ["peer_2", "peer_1", "peer_0"]
        exported = list(database.export(NOW - timedelta(hours=2), batch=1))
        assert [c["id"] for c in exported] == ["peer_3", "peer_4"]  # oldest first, across batches
        assert [e["text"] for e in exported[1]["transcript"]] == ["question 4", "answer"]
    finally:
        store.close()


def test_retention_deletes_old_calls_at_start(store_settings: Settings) -> None:
    database = open_database(store_settings)
    database.begin_call(CallInfo(session_id="old", transport="room"), NOW - timedelta(days=8))
    database.add_entry(message("old", 0, "user", "long ago"))
    database.begin_call(CallInfo(session_id="recent", transport="room"), NOW - timedelta(days=6))
    database.close()

    store = ConversationStore.open(store_settings.model_copy(update={"conversations_retention_days": 7}))
    try:
        assert store.writer.flush()  # the prune at start runs before anything queued after it
        assert [c["id"] for c in store.database.list_calls(10)] == ["recent"]
        with store.database.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar_one() == 0
    finally:
        store.close()


def test_many_threads_write_at_once(store_settings: Settings) -> None:
    store = ConversationStore.open(store_settings)

    def one_call(n: int) -> None:
        call_id = f"job_{n}"
        store.begin_call(CallInfo(session_id=call_id, transport="room"), NOW)
        for seq in range(25):
            store.add(message(call_id, seq, "user" if seq % 2 else "agent", f"{n}-{seq}"))
        store.end_call(call_id, NOW, "user_initiated")

    try:
        threads = [threading.Thread(target=one_call, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.writer.flush()
        for n in range(8):
            call = store.database.get_call(f"job_{n}")
            assert call is not None and call["end_reason"] == "user_initiated"
            assert [e["text"] for e in call["transcript"]] == [f"{n}-{seq}" for seq in range(25)]
        health = store.health()
        assert health["written"] == 8 * 27 and health["failed"] == 0 and health["dropped"] == 0
    finally:
        store.close()


def test_a_failed_write_is_counted_and_never_raised(store_settings: Settings) -> None:
    store = ConversationStore.open(store_settings)
    try:
        store.begin_call(PHONE, NOW)
        store.begin_call(PHONE, NOW)  # the same id again: the database refuses it
        store.add(message(PHONE.session_id, 0, "user", "still saved after the failure"))
        assert store.writer.flush()
        health = store.health()
        assert health["ok"] and health["alive"]
        assert health["failed"] == 1 and health["written"] == 2 and health["queued"] == 0
        assert "IntegrityError" in health["last_error"]
        assert PHONE.caller_number not in health["last_error"], "no parameters in error messages"
        call = store.database.get_call(PHONE.session_id)
        assert call is not None and call["transcript"][0]["text"] == "still saved after the failure"
    finally:
        store.close()


def test_health_reports_a_writer_that_stopped(store_settings: Settings) -> None:
    store = ConversationStore.open(store_settings)

    def die() -> None:
        raise SystemExit  # not a write failure: the thread itself ends

    try:
        store.writer.submit(die)
        store.writer._thread.join(10)
        health = store.health()
        assert not health["alive"] and not health["ok"]
        store.add(message("x", 0, "user", "nobody writes this"))
        assert store.health()["dropped"] == 1
    finally:
        store.close()
    assert not store.writer.flush(), "a stopped writer says so instead of waiting"


def test_stores_are_shared_per_database_and_closed_by_the_last_holder(store_settings: Settings) -> None:
    first = acquire(store_settings)
    second = acquire(store_settings)
    assert first is not None and first is second is current(store_settings)
    release(first)
    assert current(store_settings) is second and second.writer.alive
    release(second)
    assert current(store_settings) is None and not second.writer.alive
    assert acquire(store_settings.model_copy(update={"conversations_enabled": False})) is None


def test_postgres_password_never_logged(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = ConversationStore.open(make_settings(conversations_url=postgres_url))
    store.close()
    assert "saving conversations to postgresql+psycopg://test:***@" in caplog.text
    assert PASSWORD not in caplog.text
    unreachable = make_url(postgres_url).set(port=1).render_as_string(hide_password=False)
    with pytest.raises(StartupError) as error:
        ConversationStore.open(make_settings(conversations_url=unreachable))
    assert "cannot open the conversation store" in str(error.value) and PASSWORD not in str(error.value)
