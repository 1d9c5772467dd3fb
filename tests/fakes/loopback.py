"""Serve an aiohttp app on 127.0.0.1 at a free port (tests send traffic to loopback only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, int]:
    """Start `app`; returns its runner (clean it up when done) and the port it listens on."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
