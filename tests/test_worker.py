"""Worker mode against a protocol-faithful fake LiveKit server: the real `voice-agent start` process registers,
takes jobs up to its capacity, reports its load, declines when full and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from livekit.agents.utils import http_server
from livekit.protocol import agent

from agent.models import Models
from agent.settings import Settings
from agent.worker import VoiceAgentServer, worker_load
from tests.fakes.livekit_server import API_KEY, API_SECRET, FakeLiveKitServer
from tests.workers import WorkerProcess, launch_worker

AGENT_NAME = "test-agent"


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def test_load_is_the_larger_of_sessions_and_gpu_memory() -> None:
    s = settings(max_sessions=4, max_gpu_memory_fraction=0.8)
    assert worker_load(0, s, gpu_used=0.0) == 0.0
    assert worker_load(1, s, gpu_used=0.0) == 0.25
    assert worker_load(1, s, gpu_used=0.4) == 0.5  # half of the memory the worker may use
    assert worker_load(4, s, gpu_used=0.1) == 1.0
    assert worker_load(2, s, gpu_used=0.95) == 1.0  # capped: memory beyond the allowed fraction is full


def test_an_unhealthy_engine_makes_the_worker_full() -> None:
    s = settings(max_sessions=4)
    assert worker_load(0, s, gpu_used=0.0, healthy=False) == 1.0


async def test_the_health_port_is_503_while_an_engine_cannot_serve(sick_models: Models) -> None:
    """livekit-agents creates its health server inside run(); the worker's hook goes in as it is assigned."""
    server = VoiceAgentServer(sick_models, ws_url="ws://127.0.0.1:9", api_key="k", api_secret="s" * 32)
    health = http_server.HttpServer("127.0.0.1", 0)
    health.app.add_routes([web.get("/", lambda _: web.Response(text="OK"))])  # livekit-agents' own route
    server._http_server = health  # what AgentServer.run() does
    await health.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{health.port}/") as r:
                assert r.status == 503 and (await r.text()).startswith("stt: ")
            async with http.get(f"http://127.0.0.1:{health.port}/engines") as r:
                engines = await r.json()
        assert engines["stt"]["alive"] is False and engines["tts"]["healthy"] is True
    finally:
        await health.aclose()


@dataclass
class Worker:
    proc: WorkerProcess
    server: FakeLiveKitServer


@pytest.fixture(scope="module")
async def worker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worker]:
    server = await FakeLiveKitServer().start()
    env = {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "VOICE_AGENT_AGENT_NAME": AGENT_NAME,
        "VOICE_AGENT_MAX_SESSIONS": "2",
        "VOICE_AGENT_DRAIN_TIMEOUT": "120",
    }
    proc = await launch_worker(tmp_path_factory.mktemp("worker") / "worker.log", env)
    try:
        registered = asyncio.ensure_future(server.wait_for("register", timeout=300))
        while not registered.done():  # loading the models; fail at once if the process dies
            assert proc.process.returncode is None, proc.log_tail()
            await asyncio.sleep(0.5)
        registered.result()
        yield Worker(proc, server)
    finally:
        await proc.kill()
        await server.aclose()


async def test_registers_with_its_agent_name(worker: Worker) -> None:
    register = await worker.server.wait_for("register")
    assert register.agent_name == AGENT_NAME
    assert register.type == agent.JobType.JT_ROOM
    async with aiohttp.ClientSession() as http:
        async with http.get(worker.proc.health_url + "/") as r:
            assert r.status == 200
        async with http.get(worker.proc.health_url + "/worker") as r:
            info = await r.json(content_type=None)
        async with http.get(worker.proc.health_url + "/engines") as r:
            engines = await r.json()
    assert info["agent_name"] == AGENT_NAME
    assert engines["stt"]["healthy"] is True and engines["tts"]["healthy"] is True


async def test_writes_thread_stacks_to_its_log_on_sigusr1(worker: Worker) -> None:
    worker.proc.process.send_signal(signal.SIGUSR1)
    for _ in range(50):
        if "most recent call first" in worker.proc.log.read_text(errors="replace"):
            break
        await asyncio.sleep(0.1)
    assert "most recent call first" in worker.proc.log.read_text(
        errors="replace"
    )  # faulthandler's stack header
    assert worker.proc.process.returncode is None  # still serving


async def test_takes_jobs_up_to_capacity_and_reports_load(worker: Worker) -> None:
    server = worker.server
    first, second, third = (server.job(f"J_{n}", AGENT_NAME) for n in ("first", "second", "third"))

    for job in (first, second):
        answer = await server.offer(job)
        assert answer.available, f"job {job.id} declined"
        assert answer.participant_identity
        await server.assign(job, answer.participant_identity)
        # the job's room connection arrives at the server with the token it was assigned
        await server.wait_for("update_job", lambda u, j=job: u.job_id == j.id)

    started = time.monotonic()
    full = await server.wait_for(
        "update_worker", lambda u: u.status == agent.WorkerStatus.WS_FULL, after=started, timeout=15
    )
    assert full.load == pytest.approx(1.0)
    assert (await server.offer(third)).available is False  # at capacity: declined

    # a terminated job gets up to 15 s to leave its entrypoint (here: stuck connecting to the fake /rtc)
    await server.terminate(second.id)
    freed = time.monotonic()
    update = await server.wait_for(
        "update_worker", lambda u: u.status == agent.WorkerStatus.WS_AVAILABLE, after=freed, timeout=45
    )
    assert update.load < 1.0
    assert len(server.rtc_tokens) >= 2

    # leave no call behind for the next test: the first job ends once its room connection is refused
    await server.terminate(first.id)
    await server.refuse_rooms()
    ended = time.monotonic()
    await server.wait_for("update_worker", lambda u: u.load == 0.0, after=ended, timeout=45)
    server.hold_rooms()


async def test_drains_on_sigterm(worker: Worker) -> None:
    server = worker.server
    job = server.job("J_during_drain", AGENT_NAME)
    answer = await server.offer(job)
    assert answer.available
    await server.assign(job, answer.participant_identity)
    await server.wait_for("update_job", lambda u: u.job_id == job.id)

    signalled = time.monotonic()
    worker.proc.process.send_signal(signal.SIGTERM)
    await server.wait_for(
        "update_worker", lambda u: u.status == agent.WorkerStatus.WS_FULL, after=signalled, timeout=15
    )
    late = server.job("J_late", AGENT_NAME)
    assert (await server.offer(late)).available is False  # draining: no new calls

    await asyncio.sleep(1.0)
    assert worker.proc.process.returncode is None, "worker exited while a call was still active"
    assert not server.worker_closed.is_set()

    await server.terminate(job.id)
    await server.refuse_rooms()  # a job stuck connecting would otherwise take ~20 s to give up
    returncode = await worker.proc.exit_code(120)
    assert returncode == 0, worker.proc.log_tail()
    ended = {
        m.update_job.job_id: m.update_job.status
        for _, m in server.received
        if m.WhichOneof("message") == "update_job"
    }
    assert ended[job.id] in (agent.JobStatus.JS_SUCCESS, agent.JobStatus.JS_FAILED)
