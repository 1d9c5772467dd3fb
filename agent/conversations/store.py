"""The process's conversation stores: a database plus the writer thread in front of it, opened once at startup
(`acquire`: `voice-agent serve`/`web` through the app, the worker in `run_worker`) and shared by every call
of the process, whatever thread or event loop the call runs on (`current`, from `build_session`)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ..call_info import CallInfo
from ..settings import Settings
from .database import Database, Entry, database_url, describe, open_database
from .writer import Writer

logger = logging.getLogger("voice_agent.conversations")


class ConversationStore:
    def __init__(self, database: Database, retention_days: int) -> None:
        self.database = database
        self._retention = timedelta(days=retention_days)
        self.writer = Writer("conversation-writer", prune=self._prune if retention_days else None)

    @classmethod
    def open(cls, settings: Settings) -> ConversationStore:
        """Blocking: connects and migrates the schema. StartupError when the database cannot be used."""
        database = open_database(settings)
        logger.info("saving conversations to %s", describe(database.url))
        return cls(database, settings.conversations_retention_days)

    def begin_call(self, call: CallInfo, started_at: datetime) -> None:
        self.writer.submit(self.database.begin_call, call, started_at)

    def add(self, entry: Entry) -> None:
        self.writer.submit(self.database.add_entry, entry)

    def end_call(self, call_id: str, ended_at: datetime, reason: str) -> None:
        self.writer.submit(self.database.end_call, call_id, ended_at, reason)

    def health(self) -> dict[str, Any]:
        return {"backend": self.database.backend} | self.writer.health()

    def close(self) -> None:
        """Writes what is queued, then closes the database."""
        self.writer.close()
        self.database.close()

    def _prune(self) -> int:
        pruned = self.database.prune(datetime.now(UTC) - self._retention)
        if pruned:
            logger.info("deleted %d saved conversations older than %d days", pruned, self._retention.days)
        return pruned


_lock = threading.Lock()
_open: dict[str, tuple[ConversationStore, int]] = {}  # by database URL: the store and how many hold it


def _key(settings: Settings) -> str:
    return database_url(settings).render_as_string(hide_password=False)


def acquire(settings: Settings) -> ConversationStore | None:
    """The store of `settings`' database, opened on first use (blocking), None when recording is off.
    Each acquire is paired with a `release`."""
    if not settings.conversations_enabled:
        return None
    key = _key(settings)
    with _lock:
        store, holders = _open.get(key) or (ConversationStore.open(settings), 0)
        _open[key] = (store, holders + 1)
        return store


def release(store: ConversationStore) -> None:
    """The last holder's release flushes and closes the store."""
    with _lock:
        key = next(k for k, (s, _) in _open.items() if s is store)
        _, holders = _open.pop(key)
        if holders > 1:
            _open[key] = (store, holders - 1)
            return
    store.close()


def current(settings: Settings) -> ConversationStore | None:
    """The open store of `settings`' database, if one is open in this process."""
    if not settings.conversations_enabled:
        return None
    with _lock:
        held = _open.get(_key(settings))
    return held[0] if held else None
