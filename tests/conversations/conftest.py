"""The conversation store's backends: a SQLite file per test, and a database per test on a real PostgreSQL
(Debian's `postgresql` package) that this session starts on 127.0.0.1 as the `postgres` user and stops by
the pid it started."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.settings import Settings
from tests.conftest import make_settings
from tests.workers import free_port

PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
PASSWORD = "never-in-a-log-0451"  # trust authentication ignores it: it is there to be kept out of logs


def _as_postgres(uid: int) -> list[str]:
    """Tests run as root (here and in CI), which postgres refuses: its own system user runs it."""
    if uid != 0:
        return []
    user = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields the URL of its `postgres` database (user `test`)."""
    assert PG_BINARIES, "PostgreSQL is not installed: `make test` installs Debian's postgresql package"
    bin_dir = PG_BINARIES[-1].parent
    # under /tmp, not pytest's root-only tmp dir: the postgres user must reach it
    root = Path(tempfile.mkdtemp(prefix="voice-agent-pg-"))
    prefix = _as_postgres(os.getuid())
    if prefix:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "test", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    port = free_port()
    log = (root / "postgres.log").open("wb")
    server = subprocess.Popen(
        [*prefix, str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
        + ["-k", str(root), "-c", "fsync=off", "-c", "full_page_writes=off"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    url = f"postgresql://test:{PASSWORD}@127.0.0.1:{port}/postgres"
    try:
        _wait_until_up(url, server, root / "postgres.log")
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown: running sessions are disconnected
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"postgres exited: {log.read_text(errors='replace')[-2000:]}"
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise AssertionError(f"postgres did not accept connections within {timeout} s")


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """An empty database of its own on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides that point the store at an empty database of each kind."""
    if request.param == "sqlite":
        return {"conversations_path": tmp_path / "calls.db"}
    return {"conversations_url": request.getfixturevalue("postgres_url")}


@pytest.fixture
def store_settings(backend: dict[str, Any]) -> Settings:
    return make_settings(**backend)
