"""`voice-agent` command line: serve (embedded WebRTC mode), check (diagnose settings and models)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from pydantic import ValidationError

from .errors import StartupError
from .settings import Settings

logger = logging.getLogger("voice_agent")


def load_settings(**overrides: object) -> Settings:
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as e:
        err = e.errors()[0]
        name = "VOICE_AGENT_" + "_".join(str(p) for p in err["loc"]).upper()
        raise StartupError(f"invalid setting {name}: {err['msg']}") from None
    if settings.uses_groq and settings.groq_api_key is None:
        raise StartupError(
            "GROQ_API_KEY is not set: create a key at https://console.groq.com/keys and export it (or put it "
            "in .env), or point VOICE_AGENT_LLM_BASE_URL at another OpenAI-compatible server"
        )
    return settings


async def serve(settings: Settings) -> None:
    from aiohttp import web

    from .embedded import create_app
    from .models import load_models

    models = await load_models(settings)
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
    logger.info("voice agent ready on http://%s:%s", settings.host, settings.port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await runner.cleanup()


async def check(settings: Settings) -> None:
    from .models import load_models

    models = await load_models(settings)
    for key, value in models.describe().items():
        print(f"{key}: {value}")
    print("ok")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-agent", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the agent with its embedded WebRTC endpoint and web page")
    p_serve.add_argument("--host", help="listen address (VOICE_AGENT_HOST)")
    p_serve.add_argument("--port", type=int, help="listen port (VOICE_AGENT_PORT)")
    sub.add_parser("check", help="validate settings and load the models, then exit")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            settings = load_settings(host=args.host, port=args.port)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(settings))
        else:
            asyncio.run(check(load_settings()))
    except StartupError as e:
        print(f"voice-agent: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
