"""Shared fixtures: synthetic (random-weight) models loaded once per test session through the product's own
loaders, a scripted OpenAI-compatible server standing in for Groq, and the embedded app on loopback."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # model hubs are unreachable: fail fast instead of retrying
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# synthetic .nemo models are cached here instead of the user's ~/.cache
os.environ.setdefault("PARAKEET_CACHE_DIR", tempfile.mkdtemp(prefix="parakeet-cache-"))

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.models import Models, load_models
from agent.settings import Settings
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


@pytest.fixture
async def llm_server() -> AsyncIterator[ScriptedLLMServer]:
    server = await ScriptedLLMServer(["Hello! How can I help you today?"]).start()
    yield server
    await server.aclose()


StartServer = Callable[..., Any]


@pytest.fixture
async def start_agent(models: Models, llm_server: ScriptedLLMServer) -> AsyncIterator[StartServer]:
    """`await start_agent(**settings)` runs the embedded app on 127.0.0.1 and returns its base URL."""
    from agent.embedded import create_app

    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> str:
        settings = make_settings(llm_base_url=llm_server.base_url, **overrides)
        runner = web.AppRunner(create_app(settings, models))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")
