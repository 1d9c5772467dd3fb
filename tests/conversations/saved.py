"""Reading what another process (a worker, `voice-agent serve`) saved in its SQLite conversation store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.conversations.database import Database, database_url
from tests.conftest import make_settings

Call = dict[str, Any]


async def saved_call(path: Path, match: Callable[[Call], bool], timeout: float = 30.0) -> Call:
    """Until the store at `path` holds a call (with its transcript) that `match`es; the newest such call."""
    database = Database(database_url(make_settings(conversations_path=path)))

    def find() -> Call | None:
        for listed in database.list_calls(100):
            call = database.get_call(listed["id"])
            if call is not None and match(call):
                return call
        return None

    try:
        async with asyncio.timeout(timeout):
            while (call := await asyncio.to_thread(find)) is None:
                await asyncio.sleep(0.25)
            return call
    except TimeoutError:
        raise AssertionError(f"no matching call saved in {path} within {timeout} s") from None
    finally:
        database.close()
