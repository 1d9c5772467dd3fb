"""What a process holds, for the churn tests: memory, threads, and in this process asyncio tasks and aiortc
peer connections."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCPeerConnection


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@dataclass(frozen=True)
class Footprint:
    rss: int
    """resident memory, bytes"""
    threads: int
    tasks: int = 0
    peer_connections: int = 0

    @classmethod
    def now(cls) -> Footprint:
        """This process (call from its event loop)."""
        gc.collect()
        # type(), not isinstance(): gc also returns weak proxies, whose referent may be gone
        peers = sum(1 for o in gc.get_objects() if type(o) is RTCPeerConnection)
        return cls(
            rss=cls.of(os.getpid()).rss,
            threads=threading.active_count(),
            tasks=len(asyncio.all_tasks()),
            peer_connections=peers,
        )

    @classmethod
    def of(cls, pid: int) -> Footprint:
        """Another process: memory and threads from /proc."""
        status = _status(pid)
        return cls(rss=int(status["VmRSS"].split()[0]) * 1024, threads=int(status["Threads"]))

    def compared_to(self, before: Footprint) -> str:
        growth = (self.rss - before.rss) / before.rss * 100
        return (
            f"RSS {before.rss / 2**20:.0f} -> {self.rss / 2**20:.0f} MiB ({growth:+.1f} %), threads "
            f"{before.threads} -> {self.threads}, tasks {before.tasks} -> {self.tasks}, peer connections "
            f"{before.peer_connections} -> {self.peer_connections}"
        )
