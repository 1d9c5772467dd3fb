"""calls and their transcript entries

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agent.conversations.schema import Document, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("room", sa.String(256)),
        sa.Column("participant", sa.String(256)),
        sa.Column("caller_number", sa.String(64)),
        sa.Column("trunk_number", sa.String(64)),
        sa.Column("direction", sa.String(16)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("end_reason", sa.String(64)),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(128), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("text", sa.Text),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("data", Document),
        sa.UniqueConstraint("call_id", "seq", name="uq_entries_call_seq"),
    )


def downgrade() -> None:
    op.drop_table("entries")
    op.drop_index("ix_calls_started_at", "calls")
    op.drop_table("calls")
