"""The conversation database through a synchronous SQLAlchemy engine (sqlite3, or psycopg 3 for PostgreSQL):
schema migrations, the writes of the recorder, the reads of the CLI and the API, and retention pruning.

Every method blocks: the app calls them from threads (the writer's, or `asyncio.to_thread`), never from an
event loop. The engine's pool is thread-safe, so one `Database` serves every thread of the process."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url

from ..call_info import CallInfo
from ..errors import StartupError
from ..settings import Settings
from .schema import calls, entries

MIGRATIONS = Path(__file__).with_name("migrations")
logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines say "Context impl ..." at every start
MIGRATION_LOCK = 0x766F6963  # PostgreSQL advisory lock id: replicas starting together migrate one at a time


def database_url(settings: Settings) -> URL:
    """VOICE_AGENT_CONVERSATIONS_URL (PostgreSQL) when set, else the SQLite file VOICE_AGENT_CONVERSATIONS_PATH."""
    if settings.conversations_url is not None:
        url = make_url(settings.conversations_url.get_secret_value())
        return url.set(drivername="postgresql+psycopg")
    return URL.create("sqlite+pysqlite", database=str(settings.conversations_path.expanduser()))


def describe(url: URL) -> str:
    """The URL without its password, for logs and health."""
    return url.render_as_string(hide_password=True)


def open_database(settings: Settings) -> Database:
    """Connected, its schema migrated (blocking). StartupError when the database cannot be used."""
    url = database_url(settings)
    database = Database(url)
    try:
        database.migrate()
    except Exception as e:
        database.close()
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StartupError(f"cannot open the conversation store {describe(url)}: {reason}") from e
    return database


@dataclass(frozen=True)
class Entry:
    """One line of a call's transcript, as the recorder sees it."""

    call_id: str
    seq: int
    at: datetime
    kind: str  # message | false_interruption | tool_call
    role: str | None = None  # user | agent
    text: str | None = None
    interrupted: bool = False
    data: dict[str, Any] | None = None


class Database:
    def __init__(self, url: URL) -> None:
        self.url = url
        self.backend = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        if self.backend == "sqlite":
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: an error message never carries a transcript or a phone number
        self.engine: Engine = create_engine(url, hide_parameters=True, pool_pre_ping=True)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it in an empty database)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn, self._migrating(conn):
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()

    @contextlib.contextmanager
    def _migrating(self, conn: Connection) -> Iterator[None]:
        """One process at a time (replicas, or `serve` and a CLI, starting together) migrates the database."""
        if self.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.rollback()  # a failed migration leaves the transaction aborted
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK})
                conn.commit()
        else:
            with open(f"{self.url.database}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                yield

    # --- writes (the recorder, through the writer thread) ------------------------------------------------

    def begin_call(self, call: CallInfo, started_at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(calls).values(
                    id=call.session_id,
                    transport=call.transport,
                    room=call.room,
                    participant=call.participant,
                    caller_number=call.caller_number,
                    trunk_number=call.trunk_number,
                    direction=call.direction,
                    started_at=started_at,
                )
            )

    def add_entry(self, entry: Entry) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(entries).values(
                    call_id=entry.call_id,
                    seq=entry.seq,
                    at=entry.at,
                    kind=entry.kind,
                    role=entry.role,
                    text=entry.text,
                    interrupted=entry.interrupted,
                    data=entry.data,
                )
            )

    def end_call(self, call_id: str, ended_at: datetime, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(calls).where(calls.c.id == call_id).values(ended_at=ended_at, end_reason=reason)
            )

    def prune(self, started_before: datetime) -> int:
        """Delete the calls that started before `started_before`, with their entries; returns how many."""
        old = select(calls.c.id).where(calls.c.started_at < started_before)
        with self.engine.begin() as conn:
            conn.execute(delete(entries).where(entries.c.call_id.in_(old)))
            return conn.execute(delete(calls).where(calls.c.started_at < started_before)).rowcount

    # --- reads ---------------------------------------------------------------------------------------------

    def list_calls(self, limit: int, before: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first: the calls that started before `before` (all when None), each with its message count."""
        messages = (
            select(entries.c.call_id, func.count().label("messages"))
            .where(entries.c.kind == "message")
            .group_by(entries.c.call_id)
            .subquery()
        )
        query = (
            select(calls, func.coalesce(messages.c.messages, 0).label("messages"))
            .outerjoin(messages, messages.c.call_id == calls.c.id)
            .order_by(calls.c.started_at.desc(), calls.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(calls.c.started_at < before)
        with self.engine.connect() as conn:
            return [_call(row) | {"messages": row.messages} for row in conn.execute(query)]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """The call with its whole transcript, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
            if row is None:
                return None
            return _call(row) | {"transcript": _transcript(conn, call_id)}

    def export(self, since: datetime | None = None, batch: int = 100) -> Iterator[dict[str, Any]]:
        """Every call (oldest first; those started at or after `since`) with its transcript."""
        query = select(calls).order_by(calls.c.started_at, calls.c.id)
        if since is not None:
            query = query.where(calls.c.started_at >= since)
        for offset in itertools.count(0, batch):
            with self.engine.connect() as conn:
                rows = conn.execute(query.offset(offset).limit(batch)).all()
                done = [_call(row) | {"transcript": _transcript(conn, row.id)} for row in rows]
            yield from done
            if len(rows) < batch:
                return


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def parse_time(value: str) -> datetime:
    """ISO 8601 (a date alone is its midnight); a time without a zone is UTC. ValueError when it is not one."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """UTC with a Z (safe in a URL's query, unlike +00:00)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _call(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "transport": row.transport,
        "room": row.room,
        "participant": row.participant,
        "caller_number": row.caller_number,
        "trunk_number": row.trunk_number,
        "direction": row.direction,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "end_reason": row.end_reason,
    }


def _transcript(conn: Connection, call_id: str) -> list[dict[str, Any]]:
    query = select(entries).where(entries.c.call_id == call_id).order_by(entries.c.seq)
    out = []
    for row in conn.execute(query):
        item: dict[str, Any] = {"seq": row.seq, "at": iso(row.at), "kind": row.kind}
        if row.kind == "message":
            item |= {
                "role": row.role,
                "text": row.text,
                "interrupted": row.interrupted,
                "metrics": row.data or {},
            }
        else:
            item |= {"text": row.text, "details": row.data or {}}
        out.append(item)
    return out
