"""A protocol-faithful stand-in for livekit-server's agent service, for driving a real worker in tests.

It speaks what livekit-server speaks on `/agent` (binary `livekit.protocol.agent` protobufs over a WebSocket,
authenticated with a JWT carrying the `agent` video grant), and lets a test play the server's part: send
availability requests, assignments and terminations, and read what the worker reports. `/rtc` accepts the
job's room connection and never answers it (a fake cannot do WebRTC), so an assigned job stays in its
connect phase (the SDK gives up after about 20 s), which is long enough to observe load and drain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import jwt
from aiohttp import WSMsgType, web
from livekit import api
from livekit.protocol import agent, models

from tests.fakes.loopback import serve

API_KEY = "test-api-key"
API_SECRET = "test-api-secret-that-is-at-least-32-chars"


class FakeLiveKitServer:
    def __init__(self) -> None:
        self.received: list[tuple[float, agent.WorkerMessage]] = []
        self.rtc_tokens: list[str] = []
        self._rtc_sockets: set[web.WebSocketResponse] = set()
        self._rtc_open = True
        self.worker_closed = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FakeLiveKitServer:
        app = web.Application()
        app.router.add_get("/agent", self._agent)
        app.router.add_get("/rtc", self._rtc)
        self._runner, self.port = await serve(app, access_log=None)
        return self

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = api.TokenVerifier(API_KEY, API_SECRET).verify(token)
        except jwt.PyJWTError:
            raise web.HTTPUnauthorized() from None
        if not claims.video or not claims.video.agent:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            message = agent.WorkerMessage.FromString(msg.data)
            if message.HasField("register"):
                reply = agent.ServerMessage(
                    register=agent.RegisterWorkerResponse(
                        worker_id="AW_test", server_info=models.ServerInfo(version="fake", protocol=16)
                    )
                )
                await ws.send_bytes(reply.SerializeToString())
                self._connected.set()
            async with self._changed:
                self.received.append((time.monotonic(), message))
                self._changed.notify_all()
        self.worker_closed.set()
        return ws

    async def _rtc(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.rtc_tokens.append(request.query.get("access_token") or auth)
        if not self._rtc_open:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if not self._rtc_open:  # refused while the handshake was under way
            await ws.close()
            return ws
        self._rtc_sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self._rtc_sockets.discard(ws)
        return ws

    async def refuse_rooms(self) -> None:
        """Drop held room connections and refuse new ones, so jobs still connecting fail at once."""
        self._rtc_open = False
        for ws in list(self._rtc_sockets):
            await ws.close()

    def hold_rooms(self) -> None:
        """Accept (and hold) room connections again after `refuse_rooms`."""
        self._rtc_open = True

    async def send(self, message: agent.ServerMessage) -> None:
        await asyncio.wait_for(self._connected.wait(), 120)
        assert self._ws is not None
        await self._ws.send_bytes(message.SerializeToString())

    async def wait_for(
        self,
        kind: str,
        where: Callable[[Any], bool] = lambda _: True,
        *,
        after: float = 0.0,
        timeout: float = 30,
    ) -> Any:
        """The first `kind` message (a WorkerMessage oneof field) received after `after` that matches."""

        def find() -> Any:
            for at, message in self.received:
                if at >= after and message.WhichOneof("message") == kind and where(getattr(message, kind)):
                    return getattr(message, kind)
            return None

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(find), timeout)
            except TimeoutError:
                seen = [str(m).replace("\n", " ") for _, m in self.received[-8:]]
                raise AssertionError(
                    f"no matching {kind} within {timeout} s; last messages: {seen}"
                ) from None
            return find()

    def job(self, job_id: str, agent_name: str) -> agent.Job:
        return agent.Job(
            id=job_id,
            dispatch_id=f"AD_{job_id}",
            type=agent.JobType.JT_ROOM,
            room=models.Room(sid=f"RM_{job_id}", name=f"room-{job_id}"),
            agent_name=agent_name,
        )

    async def offer(self, job: agent.Job) -> agent.AvailabilityResponse:
        """Ask the worker to take `job` (as the server does when a room is dispatched) and return its answer."""
        asked = time.monotonic()
        await self.send(agent.ServerMessage(availability=agent.AvailabilityRequest(job=job)))
        return await self.wait_for("availability", lambda a: a.job_id == job.id, after=asked)

    async def assign(self, job: agent.Job, identity: str) -> None:
        token = (
            api.AccessToken(API_KEY, API_SECRET)
            .with_identity(identity)
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=job.room.name, agent=True))
            .to_jwt()
        )
        await self.send(
            agent.ServerMessage(assignment=agent.JobAssignment(job=job, url=self.url, token=token))
        )

    async def terminate(self, job_id: str) -> None:
        await self.send(agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))
