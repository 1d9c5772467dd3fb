"""livekit-client is pinned by Subresource Integrity: the hash the page uses is the sha384 of the npm package
`make test` installs (so the pin and the hash cannot drift), a real browser refuses other bytes, and the page
sends the API token from `?token=` or its field and says clearly what a 401 or a 429 means."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from agent.embedded import create_app
from agent.embedded.app import WEB_DIR
from agent.embedded.page import LIVEKIT_CLIENT_ROUTE, sri_sha384
from agent.settings import Settings
from tests.browser import LIVEKIT_CLIENT, talking_page
from tests.conftest import ServeApp
from tests.speech import write_wav
from tests.test_rooms import post, room_settings

TOKEN = "a-test-api-token-0123456789"
LOCAL_CLIENT = "/static/livekit-client.esm.mjs"


def npm_client() -> bytes:
    assert LIVEKIT_CLIENT.is_file(), "livekit-client is missing: run `make test` (it installs it with npm)"
    return LIVEKIT_CLIENT.read_bytes()


def test_pinned_hash_is_the_npm_files() -> None:
    default = Settings.model_fields
    url, integrity = default["livekit_client_url"].default, default["livekit_client_integrity"].default
    version = json.loads((LIVEKIT_CLIENT.parents[1] / "package.json").read_text())["version"]
    assert re.search(r"livekit-client@([0-9.]+)/dist/livekit-client\.esm\.mjs$", url).group(1) == version
    assert integrity == sri_sha384(npm_client())
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert f"livekit-client@{version}" in makefile


async def page_of(base: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(base + "/") as r:
        assert r.status == 200
        return await r.text()


async def test_room_page_pins_the_client(serve_app: ServeApp) -> None:
    settings = room_settings()
    html = await page_of(await serve_app(create_app(settings, None)))
    url, integrity = settings.livekit_client_url, settings.livekit_client_integrity
    tag = f'<link rel="modulepreload" href="{url}" integrity="{integrity}" crossorigin="anonymous">'
    assert tag in html
    import_map = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html).group(1))
    assert import_map == {"imports": {"livekit-client": url}, "integrity": {url: integrity}}


async def test_a_local_client_file_is_served_with_its_own_hash(serve_app: ServeApp, tmp_path: Path) -> None:
    local = tmp_path / "livekit-client.esm.mjs"
    local.write_bytes(npm_client())
    base = await serve_app(create_app(room_settings(livekit_client_file=local), None))
    html = await page_of(base)
    assert f'href="{LIVEKIT_CLIENT_ROUTE}" integrity="{sri_sha384(local.read_bytes())}"' in html
    assert "cdn.jsdelivr.net" not in html
    async with aiohttp.ClientSession() as http:
        async with http.get(base + LIVEKIT_CLIENT_ROUTE) as r:
            assert r.status == 200 and await r.read() == local.read_bytes()
            assert r.headers["Content-Type"].startswith("text/javascript")
        async with http.get(base + "/api/config") as r:
            assert (await r.json())["livekit_client_url"] == LIVEKIT_CLIENT_ROUTE


async def serve_page(serve_app: ServeApp, tmp_path: Path, client: bytes, **overrides: object) -> str:
    """`voice-agent web`'s app with livekit-client served from /static (no CDN in tests) and a LiveKit URL
    nothing listens on (the page gets as far as connecting)."""
    web_dir = tmp_path / "web"
    shutil.copytree(WEB_DIR, web_dir)
    (web_dir / "livekit-client.esm.mjs").write_bytes(client)
    settings = room_settings(
        livekit_url="ws://127.0.0.1:9", livekit_public_url=None, livekit_client_url=LOCAL_CLIENT, **overrides
    )
    return await serve_app(create_app(settings, None, web_dir=web_dir))


@pytest.fixture
def mic(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "silence.wav", np.zeros(48000, np.int16), 48000)


async def test_browser_refuses_a_tampered_client(serve_app: ServeApp, tmp_path: Path, mic: Path) -> None:
    url = await serve_page(serve_app, tmp_path, npm_client() + b"\n// one more line\n")
    async with talking_page(url + "/", mic) as (page, _):
        await page.wait_for_function(
            "document.getElementById('error').textContent.length > 0", timeout=30_000
        )
        assert "Could not load livekit-client" in (await page.locator("#error").text_content() or "")
        assert not await page.evaluate("window.voiceAgent.livekitClientLoaded === true")
        assert await page.evaluate("window.voiceAgent.room === undefined")  # no token was asked for


async def test_page_sends_the_token_from_the_link(serve_app: ServeApp, tmp_path: Path, mic: Path) -> None:
    url = await serve_page(serve_app, tmp_path, npm_client(), api_token=TOKEN)
    async with talking_page(f"{url}/?mode=room&token={TOKEN}", mic) as (page, _):
        await page.wait_for_function("window.voiceAgent.room !== undefined", timeout=30_000)
        assert await page.evaluate("window.voiceAgent.livekitClientLoaded") is True
        assert (await page.evaluate("window.voiceAgent.room")).startswith("call-")
        assert await page.evaluate("location.search") == "?mode=room"  # the token left the address bar
        assert await page.evaluate("sessionStorage.getItem('voiceAgentToken')") == TOKEN


async def test_page_explains_401_and_429(serve_app: ServeApp, tmp_path: Path, mic: Path) -> None:
    url = await serve_page(serve_app, tmp_path, npm_client(), api_token=TOKEN, max_rooms_per_client=1)
    error = "document.getElementById('error').textContent"
    async with talking_page(url + "/", mic) as (page, _):
        await page.wait_for_function(f"{error}.includes('Access denied')", timeout=30_000)
        assert await page.locator("#api-token").is_visible()
        # this address already holds its one call token
        status, _ = await post(url + "/api/token", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        await page.locator("#api-token").fill(TOKEN)
        await page.get_by_role("button", name="Talk").click()
        await page.wait_for_function(f"{error}.includes('Too many requests')", timeout=30_000)
        assert "wait" in (await page.locator("#error").text_content() or "")
