"""`GET /api/conversations[/{id}]` of the app: newest first and paged, one call with its transcript, 404 for
an unknown id, 400 for bad query parameters, the API token like /api/offer, the writer in /healthz."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from agent.call_info import CallInfo
from agent.conversations.database import Entry
from agent.conversations.store import current
from agent.embedded import create_app
from tests.conftest import ServeApp, make_settings

TOKEN = "t" * 32
NOW = datetime.now(UTC)


async def serve_with_calls(serve_app: ServeApp, backend: dict[str, Any], calls: int, **overrides: Any) -> str:
    settings = make_settings(**backend, **overrides)
    url = await serve_app(create_app(settings, None))
    store = current(settings)
    assert store is not None, "the app opened the store as it started"
    for i in range(calls):
        call_id = f"peer_{i}"
        store.begin_call(
            CallInfo(session_id=call_id, transport="embedded"), NOW - timedelta(minutes=calls - i)
        )
        store.add(
            Entry(call_id, 0, NOW, "message", role="user", text=f"hello {i}", data={"end_of_turn_delay": 0.5})
        )
    assert store.writer.flush()
    return url


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as r:
        return r.status, await r.json()


async def test_list_pages_and_show(serve_app: ServeApp, backend: dict[str, Any]) -> None:
    url = await serve_with_calls(serve_app, backend, 3)
    status, body = await get(f"{url}/api/conversations?limit=2")
    assert status == 200
    assert [c["id"] for c in body["conversations"]] == ["peer_2", "peer_1"]
    assert body["conversations"][0]["messages"] == 1
    status, rest = await get(f"{url}/api/conversations?limit=2&before={body['next_before']}")
    assert [c["id"] for c in rest["conversations"]] == ["peer_0"] and rest["next_before"] is None

    status, call = await get(f"{url}/api/conversations/peer_1")
    assert status == 200 and call["transport"] == "embedded"
    (entry,) = call["transcript"]
    assert (
        entry["role"] == "user"
        and entry["text"] == "hello 1"
        and entry["metrics"] == {"end_of_turn_delay": 0.5}
    )

    status, body = await get(f"{url}/api/conversations/nobody")
    assert status == 404 and "nobody" in body["error"]

    status, health = await get(f"{url}/healthz")
    assert status == 200 and health["conversations"]["alive"] and health["conversations"]["written"] == 6


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", '"limit"'),
        ("limit=abc", '"limit"'),
        ("limit=100000", '"limit"'),
        ("before=yesterday", '"before"'),
    ],
)
async def test_bad_query_parameters_are_400(
    serve_app: ServeApp, tmp_path: Any, query: str, needle: str
) -> None:
    url = await serve_with_calls(serve_app, {"conversations_path": tmp_path / "calls.db"}, 0)
    status, body = await get(f"{url}/api/conversations?{query}")
    assert status == 400 and needle in body["error"]


async def test_the_api_token_guards_the_conversations(serve_app: ServeApp, tmp_path: Any) -> None:
    url = await serve_with_calls(serve_app, {"conversations_path": tmp_path / "calls.db"}, 1, api_token=TOKEN)
    for path in ("/api/conversations", "/api/conversations/peer_0"):
        status, body = await get(url + path)
        assert status == 401 and "API token" in body["error"]
        status, _ = await get(url + path, {"Authorization": "Bearer " + "x" * 32})
        assert status == 401
        status, _ = await get(url + path, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200


async def test_no_routes_when_recording_is_off(serve_app: ServeApp) -> None:
    url = await serve_app(create_app(make_settings(conversations_enabled=False), None))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/conversations") as r:
            assert r.status == 404
        async with http.get(f"{url}/healthz") as r:
            assert "conversations" not in await r.json()
