"""Headless Chromium (Debian's) driven by Playwright, with a WAV file as its microphone: open the page, press
Talk."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parents[1]
# installed by `make test` (npm); the page imports it as an ES module
LIVEKIT_CLIENT = ROOT / ".venv/npm/node_modules/livekit-client/dist/livekit-client.esm.mjs"


def chromium_args(mic: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop",  # play once, then silence
        "--autoplay-policy=no-user-gesture-required",
    ]


def system_chromium() -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is required (make test installs it)"
    return chromium


@contextlib.asynccontextmanager
async def talking_page(
    url: str, mic: Path, *, press_talk: bool = True
) -> AsyncIterator[tuple[Page, list[str]]]:
    """Headless Chromium with `mic` as its microphone opens `url` and presses Talk (unless `press_talk` is
    false); yields the page and the page errors seen so far."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=system_chromium(), args=chromium_args(mic))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url)
            if press_talk:
                await page.get_by_role("button", name="Talk").click()
            yield page, errors
        finally:
            await browser.close()


async def inbound_bytes(page: Page) -> int:
    return int(await page.evaluate("window.voiceAgent.transport.inboundAudioBytes()"))


async def wait_for_inbound_bytes(page: Page, baseline: int, at_least: int = 5_000) -> int:
    """Inbound RTP audio bytes beyond `baseline`, waiting up to 10 s for `at_least` (speech frames are far
    bigger than an idle track's silence frames)."""
    for _ in range(100):  # bounded
        received = await inbound_bytes(page) - baseline
        if received > at_least:
            break
        await asyncio.sleep(0.1)
    return received
