"""The tables of saved conversations: one row per call, one per transcript entry (a user or agent message, a
false interruption, a tool call). Changes go through a new Alembic revision in migrations/versions/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: PostgreSQL keeps a timestamptz, SQLite a naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Document = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

calls = Table(
    "calls",
    metadata,
    Column("id", String(128), primary_key=True),  # CallInfo.session_id
    Column("transport", String(16), nullable=False),
    Column("room", String(256)),
    Column("participant", String(256)),
    Column("caller_number", String(64)),
    Column("trunk_number", String(64)),
    Column("direction", String(16)),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("end_reason", String(64)),
    Index("ix_calls_started_at", "started_at"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(128), ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),  # order within the call
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),  # message | false_interruption | tool_call
    Column("role", String(16)),  # user | agent (messages)
    Column("text", Text),
    Column("interrupted", Boolean, nullable=False, default=False),
    Column("data", Document),  # a message's per-turn metrics; details of the other kinds
    UniqueConstraint("call_id", "seq", name="uq_entries_call_seq"),
)
