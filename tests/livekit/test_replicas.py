"""Replicas against the real livekit-server: two `voice-agent start` processes with one agent name share the
rooms; a worker at capacity is skipped; with both full the caller gets a clear answer; SIGTERM drains one
worker (its call goes on, new rooms go to the other); SIGKILL loses only the killed worker's calls."""

from __future__ import annotations

import asyncio
import logging
import signal
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.bench.room_caller import NoAgentAvailable, RoomCaller
from agent.localstack import LocalStack
from tests.fakes.openai_server import ScriptedLLMServer
from tests.livekit.conftest import caller_token, start_worker
from tests.speech import speak
from tests.workers import WorkerProcess

logger = logging.getLogger(__name__)

AGENT_NAME = "replica-agent"
CAPACITY = 2  # VOICE_AGENT_MAX_SESSIONS of each replica
JOIN_TIMEOUT = 60.0
FULL_TIMEOUT = 15.0  # a room no worker can take: how long the caller waits for an agent before giving up
# livekit-agents reports a worker's status every 2.5 s, and livekit-server drops (does not queue) a room that
# no available worker can take: after capacity frees up, wait for the next report before the next room
STATUS_REPORT = 3.5


class Calls:
    """Callers of this module, each in a room of its own; every call still open is ended at teardown."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.open: dict[str, RoomCaller] = {}
        self.join_times: list[float] = []

    async def call(self, *, timeout: float = JOIN_TIMEOUT) -> tuple[str, RoomCaller]:
        room, token = caller_token(self.stack, AGENT_NAME)
        caller = await RoomCaller.join(self.stack.url, token)
        self.open[room] = caller
        self.join_times.append(await caller.wait_for_agent(timeout))
        return room, caller

    async def hang_up(self, room: str) -> None:
        await self.open.pop(room).close()

    async def close_all(self) -> None:
        for room in list(self.open):
            await self.hang_up(room)


def serving(worker: WorkerProcess, room: str) -> bool:
    return f"session started in room {room}" in worker.log.read_text(errors="replace")


async def wait_for_jobs(worker: WorkerProcess, n: int, timeout: float = 30.0) -> None:
    for _ in range(int(timeout * 10)):  # bounded
        if await worker.active_jobs() == n:
            return
        await asyncio.sleep(0.1)
    assert await worker.active_jobs() == n, f"expected {n} active jobs:\n{worker.log_tail()}"


async def answers(caller: RoomCaller, llm: ScriptedLLMServer, clips_dir: Path) -> None:
    """The agent in `caller`'s room still hears and answers."""
    asked = len(llm.requests)
    spoke_until = await caller.say(speak("Are you still there?", clips_dir))
    await llm.wait_for_requests(asked + 1, timeout=60)
    await caller.wait_for(lambda: caller.first_audio_after(spoke_until), 60, "the agent's answer")


@pytest.fixture(scope="module")
async def calls(livekit_stack: LocalStack) -> AsyncIterator[Calls]:
    calls = Calls(livekit_stack)
    yield calls
    await calls.close_all()


@pytest.fixture(scope="module")
async def replicas(
    livekit_stack: LocalStack, module_llm: ScriptedLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[WorkerProcess]]:
    logs = tmp_path_factory.mktemp("replicas")
    env = {"VOICE_AGENT_MAX_SESSIONS": str(CAPACITY), "VOICE_AGENT_DRAIN_TIMEOUT": "120"}
    workers = list(
        await asyncio.gather(
            *(start_worker(livekit_stack, logs / f"w{i}.log", AGENT_NAME, module_llm, **env) for i in (1, 2))
        )
    )
    yield workers
    for worker in workers:
        await worker.kill()


async def test_rooms_spread_over_both_and_full_workers_are_skipped(
    replicas: list[WorkerProcess], calls: Calls
) -> None:
    first, second = replicas
    rooms = [(await calls.call())[0] for _ in range(2 * CAPACITY)]
    # whatever the server's weighted choice, a full worker declines and the room goes to the other
    await wait_for_jobs(first, CAPACITY)
    await wait_for_jobs(second, CAPACITY)
    per_worker = [sum(serving(w, r) for r in rooms) for w in replicas]
    assert per_worker == [CAPACITY, CAPACITY], per_worker
    logger.info(
        "dispatch: rooms per worker %s; room join -> agent track: median %.2f s, max %.2f s",
        per_worker,
        statistics.median(calls.join_times),
        max(calls.join_times),
    )


async def test_with_every_worker_full_the_caller_is_told(replicas: list[WorkerProcess], calls: Calls) -> None:
    assert [await w.active_jobs() for w in replicas] == [CAPACITY, CAPACITY]
    with pytest.raises(NoAgentAvailable, match="every worker is busy"):
        await calls.call(timeout=FULL_TIMEOUT)
    assert [await w.active_jobs() for w in replicas] == [CAPACITY, CAPACITY], "no worker took a third call"


async def test_sigterm_drains_one_worker_while_the_other_takes_new_rooms(
    replicas: list[WorkerProcess],
    calls: Calls,
    module_llm: ScriptedLLMServer,
    livekit_stack: LocalStack,
    tmp_path_factory: pytest.TempPathFactory,
    clips_dir: Path,
) -> None:
    module_llm.reset(["Yes, I am still here."])
    draining, other = replicas
    mine = [r for r in calls.open if serving(draining, r)]
    for room in [r for r in calls.open if r not in mine]:  # make room on the other worker
        await calls.hang_up(room)
    await wait_for_jobs(other, 0)
    await asyncio.sleep(STATUS_REPORT)

    draining.process.send_signal(signal.SIGTERM)
    await draining.wait_for_log("draining worker", 15)
    room, _ = await calls.call()
    assert serving(other, room), "a new room goes to the worker that is not draining"

    await answers(calls.open[mine[0]], module_llm, clips_dir)  # the draining worker's call goes on
    assert draining.process.returncode is None, "the worker exited while its calls were active"
    for room in mine:
        await calls.hang_up(room)
    assert await draining.exit_code(60) == 0, "the drained worker exited cleanly once its calls ended"


async def test_sigkill_loses_only_that_workers_calls(
    replicas: list[WorkerProcess],
    calls: Calls,
    module_llm: ScriptedLLMServer,
    livekit_stack: LocalStack,
    tmp_path_factory: pytest.TempPathFactory,
    clips_dir: Path,
) -> None:
    module_llm.reset(["Yes, I am still here."])
    survivor = replicas[1]
    while await survivor.active_jobs() < CAPACITY:  # fill the survivor: the next rooms go to a new worker
        await calls.call()
    log = tmp_path_factory.mktemp("replicas-third") / "w3.log"
    doomed = await start_worker(
        livekit_stack, log, AGENT_NAME, module_llm, VOICE_AGENT_MAX_SESSIONS=str(CAPACITY)
    )
    replicas.append(doomed)  # killed at teardown if the test fails early
    lost = [(await calls.call())[0] for _ in range(CAPACITY)]
    assert all(serving(doomed, r) for r in lost)

    await doomed.kill()  # SIGKILL
    for room in lost:
        await calls.open[room].wait_for(
            lambda r=room: calls.open[r].messages("participant_left"), 30, "the killed worker's agent to leave"
        )
    kept = next(r for r in calls.open if serving(survivor, r))
    await answers(calls.open[kept], module_llm, clips_dir)  # the survivor's calls are untouched

    await calls.hang_up(kept)
    await wait_for_jobs(survivor, CAPACITY - 1)
    await asyncio.sleep(STATUS_REPORT)
    room, _ = await calls.call()
    assert serving(survivor, room), "the next room goes to the survivor"
