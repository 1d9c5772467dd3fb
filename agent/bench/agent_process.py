"""The agent process a call benchmark talks to: started here (`voice-agent serve` on a free loopback port), or
one already running (`--agent-pid`); its CPU time and memory are sampled while the callers talk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import aiohttp
import psutil

from ..errors import StartupError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProcessSampler:
    """CPU (percent of one core, averaged between `start()` and `stop()`) and peak RSS of one process."""

    process: psutil.Process
    interval: float = 0.5
    peak_rss: int = 0
    _cpu0: float = 0.0
    _t0: float = 0.0
    _task: asyncio.Task[None] | None = None
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._cpu0, self._t0 = self._cpu(), time.monotonic()
        self._task = asyncio.create_task(self._sample())

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(psutil.Error):
            self._record_rss()
            cpu = self._cpu() - self._cpu0
            wall = max(time.monotonic() - self._t0, 1e-9)
            self.result = {
                "cpu_percent": round(100.0 * cpu / wall, 1),
                "rss_mb_peak": round(self.peak_rss / 2**20, 1),
            }
        return self.result

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def _record_rss(self) -> None:
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    async def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            while True:
                self._record_rss()
                await asyncio.sleep(self.interval)


class ServeProcess:
    """`voice-agent serve` as a child process on 127.0.0.1; `env` adds to (or overrides) this environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = os.environ | env | {"VOICE_AGENT_HOST": "127.0.0.1", "VOICE_AGENT_PORT": str(self.port)}
        self._proc: subprocess.Popen[bytes] | None = None
        # its stderr (a pipe nobody reads would fill and block it); closed by stop()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def start(self, timeout: float) -> None:
        """Returns once /healthz answers 200 (the models are loaded); StartupError if the process exits or
        `timeout` passes first (its last words are in the message)."""
        self._proc = subprocess.Popen(  # noqa: ASYNC220 (returns once forked)
            [sys.executable, "-m", "agent.cli", "serve"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"voice-agent serve exited ({self._proc.returncode}): {self._stderr()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.5)
        self.stop()
        raise StartupError(f"voice-agent serve was not healthy within {timeout:.0f} s")

    def stop(self) -> None:
        """SIGTERM (it closes its sessions), SIGKILL after 20 s."""
        if self._proc is None or self._proc.poll() is not None:
            self._log.close()
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    def _stderr(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if line.startswith("voice-agent: error:")]
        return errors[-1] if errors else " | ".join(lines[-3:])
