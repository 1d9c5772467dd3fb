"""The real livekit-server sends its webhooks to `voice-agent web`'s app: a caller who joined and left frees
their token hold (without the webhook it would last the token's 10-minute TTL). The stack is the shipped
livekit.yaml with `webhook.urls` pointing at the app, on ports of its own (no redis: rooms only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from agent.bench.room_caller import RoomCaller
from agent.embedded import create_app
from agent.localstack import LocalStack, StackAddresses
from tests.conftest import ServeApp
from tests.livekit.conftest import MEDIA_IP, stack_settings
from tests.test_rooms import post
from tests.workers import ROOT, free_port


async def test_livekit_webhooks_free_the_callers_token_hold(serve_app: ServeApp, tmp_path: Path) -> None:
    assert MEDIA_IP, "run inside tests/run-isolated (its own network namespace)"
    where = StackAddresses(
        node_ip=MEDIA_IP,
        bind_ip="127.0.0.1",
        http_port=free_port(),
        rtc_tcp_port=free_port(),
        rtc_udp_ports=(43000, 43199),  # apart from the session stack's ranges
        turn_udp_port=free_port(),
        turn_tls_port=free_port(),
        turn_relay_ports=(43200, 43399),
    )
    stack = LocalStack(ROOT / "livekit.yaml", tmp_path / "stack", where, with_redis=False)
    settings = stack_settings(
        stack, webhook_enabled=True, max_rooms_per_client=1, rate_limit_per_minute=10_000, token_ttl=600
    )
    base = await serve_app(create_app(settings, None))
    shipped = yaml.safe_load((ROOT / "livekit.yaml").read_text())
    shipped["webhook"]["urls"] = [f"{base}/api/livekit/webhook"]
    config = tmp_path / "livekit.yaml"
    config.write_text(yaml.safe_dump(shipped, sort_keys=False))
    stack.shipped_config = config
    await asyncio.to_thread(stack.start)
    try:
        status, token = await post(base + "/api/token", json={})
        assert status == 200, token
        assert (await post(base + "/api/token", json={}))[0] == 429  # this address holds its one token

        caller = await RoomCaller.join(stack.url, token["token"])
        await asyncio.sleep(1.0)  # in the room for a moment: participant_joined arrives
        assert (await post(base + "/api/token", json={}))[0] == 429  # joined: still held
        await caller.close()

        for _ in range(300):  # bounded: 30 s for participant_left to arrive
            status, _ = await post(base + "/api/token", json={})
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, "the participant_left webhook freed the hold"
    finally:
        await asyncio.to_thread(stack.stop)
