"""Shared fixtures: synthetic (random-weight) models loaded once per test session through the product's own
loaders, a scripted OpenAI-compatible server standing in for Groq, and the embedded app on loopback."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # model hubs are unreachable: fail fast instead of retrying
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# synthetic .nemo models are cached here instead of the user's ~/.cache
os.environ.setdefault("PARAKEET_CACHE_DIR", tempfile.mkdtemp(prefix="parakeet-cache-"))
# saved conversations of the apps and the child processes the tests start go here, never into ~/.local/share
os.environ.setdefault(
    "VOICE_AGENT_CONVERSATIONS_PATH", os.path.join(tempfile.mkdtemp(prefix="conversations-"), "calls.db")
)

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.models import Models, load_models
from agent.settings import Settings
from tests.fakes.loopback import serve
from tests.fakes.openai_server import ScriptedLLMServer


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "stt_model": "synthetic-tiny",
        "tts_model": "synthetic-tiny",
        "device": "cpu",
        "groq_api_key": "test-key",
    }
    return Settings(_env_file=None, **(base | overrides))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def models() -> Models:
    return await load_models(make_settings())


@pytest.fixture(scope="session")
async def sick_models(models: Models) -> Models:
    """The shared models, but with an STT engine of its own whose scheduler has stopped: unhealthy."""
    import asyncio

    from livekit.plugins import parakeet
    from livekit.plugins.parakeet import testing

    def load() -> parakeet.ParakeetEngine:
        path = testing.ensure_synthetic_model("synthetic-tiny")
        return parakeet.load_engine(str(path), device="cpu", max_batch_size=3, name="sick")

    stt = await asyncio.to_thread(load)
    stt.close()
    return Models(vad=models.vad, stt=stt, tts=models.tts)


@pytest.fixture
async def llm_server() -> AsyncIterator[ScriptedLLMServer]:
    server = await ScriptedLLMServer(["Hello! How can I help you today?"]).start()
    yield server
    await server.aclose()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without the interpreter's teardown once pytest has reported: a native thread that WebRTC sessions
    leave behind (seen after the e2e tests) makes the C++ runtime abort during teardown ("terminate called
    without an active exception", exit 134), which would turn a passing run into a failing one. The exit
    status stays pytest's own."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(getattr(config, "_voice_agent_exitstatus", 0)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._voice_agent_exitstatus = exitstatus  # type: ignore[attr-defined]


StartServer = Callable[..., Any]
ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """`await serve_app(app)` serves an aiohttp app on 127.0.0.1 until the test ends; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner, port = await serve(app)
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def start_agent(models: Models, llm_server: ScriptedLLMServer, serve_app: ServeApp) -> StartServer:
    """`await start_agent(**settings)` runs the embedded app on 127.0.0.1 and returns its base URL."""
    from agent.embedded import create_app

    async def start(**overrides: Any) -> str:
        settings = make_settings(llm_base_url=llm_server.base_url, **overrides)
        return await serve_app(create_app(settings, models))

    return start


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")
