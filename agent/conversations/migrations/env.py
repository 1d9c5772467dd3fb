"""Alembic environment of the conversation store. It runs only programmatically (`Database.migrate`), which
passes the open connection in `config.attributes["connection"]`; nothing here reads an alembic.ini."""

from __future__ import annotations

from alembic import context

from agent.conversations.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
