"""`voice-agent start` as a child process of the tests: synthetic models on the CPU, no .env, its log kept for
failure messages, stopped by its own pid."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    health_url: str
    log: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    async def info(self) -> dict[str, Any]:
        """livekit-agents' `GET /worker`: agent_name, active_jobs, worker_load."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(self.health_url + "/worker") as r,
        ):
            return await r.json(content_type=None)

    async def engines(self) -> dict[str, Any]:
        """The worker's `GET /engines`: each model engine's health."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(self.health_url + "/engines") as r,
        ):
            assert r.status == 200, await r.text()
            return await r.json()

    async def active_jobs(self) -> int:
        return int((await self.info()).get("active_jobs", 0))

    async def wait_for_no_jobs(self, timeout: float = 20.0) -> None:
        """Until the worker runs no job (its calls ended and freed their capacity)."""
        for _ in range(int(timeout * 4)):
            if not await self.active_jobs():
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"a job outlived its call:\n{self.log_tail()}")

    async def wait_for_log(self, text: str, timeout: float) -> None:
        """Until `text` appears in the log; fails at once if the process exits."""
        for _ in range(int(timeout * 10)):
            if text in self.log.read_text(errors="replace"):
                return
            assert self.process.returncode is None, f"worker exited:\n{self.log_tail()}"
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {text!r} in the worker log within {timeout} s:\n{self.log_tail()}")

    def registered_ids(self) -> list[str]:
        """Worker ids the server gave this process (one per registration)."""
        ids = []
        for line in self.log.read_text(errors="replace").splitlines():
            if '"registered worker"' in line:
                ids.append(json.loads(line).get("id", ""))
        return ids

    async def exit_code(self, timeout: float) -> int:
        """The exit status; a worker still running after `timeout` s fails the test with its thread stacks."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack into the log
            await asyncio.sleep(2.0)
            raise AssertionError(f"worker still running after {timeout} s:\n{self.log_tail(12000)}") from None

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def conversations_db(log: Path) -> Path:
    """The SQLite file where the worker logging to `log` saves its calls."""
    return log.with_suffix(".conversations.db")


async def launch_worker(log: Path, env: dict[str, str]) -> WorkerProcess:
    """Start `voice-agent start` with synthetic models and `env` (LIVEKIT_*, VOICE_AGENT_* overrides)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VOICE_AGENT_", "LIVEKIT_"))}
    full_env = (
        base
        | {
            "GROQ_API_KEY": "test-key",
            "VOICE_AGENT_STT_MODEL": "synthetic-tiny",
            "VOICE_AGENT_TTS_MODEL": "synthetic-tiny",
            "VOICE_AGENT_DEVICE": "cpu",
            "VOICE_AGENT_WORKER_PORT": str(port),
            "VOICE_AGENT_LOG_FORMAT": "json",  # registered_ids() reads the JSON records
            "VOICE_AGENT_CONVERSATIONS_PATH": str(conversations_db(log)),
        }
        | env
    )
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "voice-agent"),
            "start",
            env=full_env,
            cwd=ROOT / "tests",  # no .env there
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return WorkerProcess(process, f"http://127.0.0.1:{port}", log)
