"""Churn without leaks, embedded mode: 200 real WebRTC callers connect, get a running agent session, and hang
up, one after another. Afterwards the process has given back what they held: session slots, peer
connections, engine streams, asyncio tasks, threads, and (within 5 %) memory."""

from __future__ import annotations

import asyncio
import gc
import logging

import aiohttp

from agent.bench.caller import Caller
from agent.models import Models
from tests.conftest import StartServer
from tests.resources import Footprint

logger = logging.getLogger("tests.churn")

CYCLES = 200
WARM_UP = 20  # first sessions fill caches (tokenizers, codec tables, allocator arenas): not a leak


async def one_call(http: aiohttp.ClientSession, url: str) -> None:
    caller = await Caller.connect(url)
    try:
        # the agent's session is running once it reports its state on the data channel
        await caller.wait_for(lambda: caller.messages("agent_state"), 30, "the agent's first state")
    finally:
        await caller.close()
    for _ in range(100):  # a hang-up gives its slot back within moments
        if await sessions(http, url) == (0, 0):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the session of a closed call still holds its slot: {await sessions(http, url)}")


async def sessions(http: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    async with http.get(f"{url}/healthz") as r:
        body = await r.json()
    return body["sessions"], body["pending"]


async def settle(http: aiohttp.ClientSession, url: str, models: Models) -> None:
    """Wait (bounded) until every session has ended and its engine streams are gone."""
    for _ in range(200):
        if await sessions(http, url) == (0, 0) and models.stt.active_streams == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the sessions' last close callbacks
    gc.collect()


async def test_connect_and_hang_up_200_times(start_agent: StartServer, models: Models) -> None:
    # one client calling 220 times within minutes: lift the per-client request limit, nothing else
    url = await start_agent(max_sessions=2, rate_limit_per_minute=100_000)
    async with aiohttp.ClientSession() as http:
        for _ in range(WARM_UP):
            await one_call(http, url)
        await settle(http, url, models)
        before = Footprint.now()
        for _ in range(CYCLES):
            await one_call(http, url)
        await settle(http, url, models)
        after = Footprint.now()
        logger.info("churn: embedded, %d calls: %s", CYCLES, after.compared_to(before))

        assert await sessions(http, url) == (0, 0), "every session slot was given back"
        assert models.stt.active_streams == 0, "no STT stream left on the engine"
        assert models.tts.health().queue_depth == 0, "no TTS request left on the engine"
        assert after.tasks <= before.tasks, f"asyncio tasks: {before.tasks} -> {after.tasks}"
        assert after.threads <= before.threads, f"threads: {before.threads} -> {after.threads}"
        assert after.peer_connections <= before.peer_connections, "aiortc peer connections"
        assert after.rss <= before.rss * 1.05, f"RSS grew more than 5 %: {after.compared_to(before)}"
