"""`voice-agent` command line: serve (embedded WebRTC mode), check (diagnose settings and models), bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from . import logs
from .conversations import commands as conversation_commands
from .errors import StartupError
from .settings import Settings
from .telephony import commands as sip_commands

logger = logging.getLogger("voice_agent")


LIVEKIT_MISSING = "set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET (your LiveKit server and its keys)"


def load_settings(*, needs_llm: bool = True, **overrides: object) -> Settings:
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        name = "_".join(str(p) for p in err["loc"])
        if not name.isupper():  # ours are prefixed; aliases (LIVEKIT_URL, ...) are already the variable name
            name = "VOICE_AGENT_" + name.upper()
        raise StartupError(f"invalid setting {name}: {err['msg']}") from None
    if needs_llm and settings.uses_groq and settings.groq_api_key is None:
        raise StartupError(
            "GROQ_API_KEY is not set: create a key at https://console.groq.com/keys and export it (or put it "
            "in .env), or point VOICE_AGENT_LLM_BASE_URL at another OpenAI-compatible server"
        )
    return settings


async def serve(settings: Settings, *, with_models: bool = True) -> None:
    from aiohttp import web

    from .embedded import create_app
    from .models import load_models

    logs.use_format(settings.log_format)
    models = await load_models(settings) if with_models else None
    runner = web.AppRunner(create_app(settings, models))
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise StartupError(
            f"cannot listen on {settings.host}:{settings.port} ({e.strerror}); set VOICE_AGENT_PORT"
        ) from e
    logger.info(
        "voice agent ready on http://%s:%s (embedded: %s, LiveKit rooms: %s)",
        settings.host,
        settings.port,
        "yes" if with_models else "no",
        "yes" if settings.has_livekit else "no",
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await runner.cleanup()


def run_worker(settings: Settings, *, dev: bool, log_format: str | None, log_level: str) -> None:
    """Load the models once, then hand the worker to livekit-agents' runner (drain on SIGTERM unless dev).
    The runner formats the records: its JSON (`log_format`, else VOICE_AGENT_LOG_FORMAT=json) or colored text."""
    from livekit.agents.cli.cli import _run_worker  # what `python -m livekit.agents start` runs
    from livekit.agents.cli.proto import CliArgs

    from .conversations import store
    from .models import load_models
    from .worker import build_server

    if not settings.has_livekit:
        raise StartupError(LIVEKIT_MISSING)
    conversations = store.acquire(settings)  # before the models: a database it cannot use fails fast
    models = asyncio.run(load_models(settings))
    # a worker that will not drain can be asked where it is stuck: `kill -USR1 <pid>` prints every thread's stack
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # the runner installs its own (json or colored) handler on the root logger; with ours too, every line
    # would be written twice
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    log_format = log_format or ("json" if settings.log_format == "json" else "colored")
    try:
        _run_worker(
            build_server(settings, models, conversations),
            CliArgs(log_level=log_level, log_format=log_format, dev=dev),
        )
    finally:
        if conversations is not None:
            store.release(conversations)  # what is queued is written before the process exits
    # Drained and done: leave without the interpreter's teardown, in which a native thread left by the
    # WebRTC stack makes the C++ runtime abort ("terminate called without an active exception", exit 134),
    # which an orchestrator would take for a crash of a cleanly drained replica.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def check(settings: Settings) -> None:
    from .models import load_models

    models = await load_models(settings)
    for key, value in models.describe().items():
        print(f"{key}: {value}")
    print("ok")


BENCHMARKS = {
    "stt": "measure the Parakeet engine with N concurrent streams",
    "tts": "measure the Chatterbox engine with N concurrent replies",
    "call": "N simulated callers talk to the agent over real WebRTC (voice-to-voice, barge-in, gaps)",
}


def bench(args: argparse.Namespace) -> None:
    """Each benchmark module has `add_arguments(parser)`, `async run(args) -> dict` and `format_table(result)`."""
    module = importlib.import_module(f"agent.bench.{args.benchmark}")
    result = asyncio.run(module.run(args))
    print(json.dumps(result) if args.json else module.format_table(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-agent", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the agent with its embedded WebRTC endpoint and web page")
    p_serve.add_argument("--host", help="listen address (VOICE_AGENT_HOST)")
    p_serve.add_argument("--port", type=int, help="listen port (VOICE_AGENT_PORT)")
    for name, help_text in (
        ("start", "run as a LiveKit worker (production: drains on SIGTERM)"),
        ("dev", "run as a LiveKit worker in development mode (no drain, debug logs)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--log-format", choices=["json", "colored"], help="default: json if VOICE_AGENT_LOG_FORMAT=json"
        )
    p_web = sub.add_parser("web", help="serve only the web page and LiveKit room tokens (no models, no GPU)")
    p_web.add_argument("--host", help="listen address (VOICE_AGENT_HOST)")
    p_web.add_argument("--port", type=int, help="listen port (VOICE_AGENT_PORT)")
    p_stack = sub.add_parser(
        "stack", help="run livekit-server + redis + one worker + the page on this machine (no Docker)"
    )
    p_stack.add_argument("--config", default="livekit.yaml", help="the livekit-server config to derive from")
    p_stack.add_argument("--port", type=int, help="port of the page (VOICE_AGENT_PORT)")
    sub.add_parser("check", help="validate settings and load the models, then exit")
    sip_commands.add_parser(sub)
    conversation_commands.add_parser(sub)
    p_bench = sub.add_parser("bench", help="benchmarks of the model engines")
    benches = p_bench.add_subparsers(dest="benchmark", required=True)
    for name, help_text in BENCHMARKS.items():
        p = benches.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        importlib.import_module(f"agent.bench.{name}").add_arguments(p)
    args = parser.parse_args(argv)

    logs.setup(args.log_level.upper())  # text; serve and web switch to VOICE_AGENT_LOG_FORMAT
    try:
        if args.command in ("serve", "web"):
            settings = load_settings(host=args.host, port=args.port, needs_llm=args.command == "serve")
            if args.command == "web" and not settings.has_livekit:
                raise StartupError(LIVEKIT_MISSING)
            from .embedded.guard import check_startup

            check_startup(settings)  # e.g. beyond loopback without VOICE_AGENT_API_TOKEN
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(settings, with_models=args.command == "serve"))
        elif args.command in ("start", "dev"):
            run_worker(
                load_settings(),
                dev=args.command == "dev",
                log_format=args.log_format,
                log_level=args.log_level.upper(),
            )
        elif args.command == "stack":
            from .localstack import run_stack

            settings = load_settings(port=args.port)  # the worker's settings, checked before anything starts
            workdir = Path(tempfile.mkdtemp(prefix="voice-agent-stack-"))
            run_stack(Path(args.config), workdir, settings.port)
        elif args.command == "sip":
            sip_commands.run(args, load_settings(needs_llm=False))
        elif args.command == "conversations":
            conversation_commands.run(args, load_settings(needs_llm=False))
        elif args.command == "bench":
            bench(args)
        else:
            asyncio.run(check(load_settings()))
    except StartupError as e:
        print(f"voice-agent: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
