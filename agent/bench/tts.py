"""`voice-agent bench tts`: N concurrent replies against one Chatterbox engine.

Each stream speaks a reply of conversational sentences (submitted together, as the LLM's sentences arrive
fast), all streams starting at once; then one more reply per stream, again all at once, is cancelled right after
its first audio, measuring how long the engine's worker takes to stop it. Reported: first audio per reply (request
→ first PCM chunk), the silence heard after it by a listener who plays each chunk as it arrives, the real-time
factor of the concurrent phase, cancel → stopped, peak GPU memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Any

from .stats import Playout, gpu_mem_mb, percentiles

REPLIES = [
    ["Sure, I can help with that.", "Your appointment is on Tuesday at three in the afternoon."],
    ["Let me check the weather for you.", "It looks sunny today, with a high of twenty two degrees."],
    ["Good question.", "The store opens at nine and closes at six on weekdays, and at noon on Sundays."],
    ["I'm sorry to hear that.", "Would you like me to connect you with someone from our support team?"],
]
LONG_SENTENCE = (
    "This is a long answer that keeps going for a while, so that there is plenty of work left to stop when "
    "the caller interrupts it in the middle of a sentence."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int, default=1, help="concurrent replies (default 1)")
    parser.add_argument(
        "--model",
        default="synthetic-tiny",
        help="HF name, local checkpoint dir, synthetic-tiny or synthetic-full (default synthetic-tiny)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default VOICE_AGENT_DEVICE)")


@dataclass
class _Reply:
    first_audio_ms: float
    audio_seconds: float
    stall_ms: float


async def _reply(engine: Any, sentences: list[str], stream: str) -> _Reply:
    """One reply whose sentences queue on one engine stream, played as its chunks arrive."""
    started = time.monotonic()
    handles = [engine.synthesize(text, stream=stream) for text in sentences]
    first: float | None = None
    samples = 0
    playout = Playout()
    for handle in handles:
        async for chunk in handle:
            now = time.monotonic()
            first = first or now
            samples += len(chunk) // 2
            playout.add(now, len(chunk) / 2 / engine.sample_rate)
    assert first is not None, "the engine produced no audio"
    return _Reply((first - started) * 1000, samples / engine.sample_rate, playout.stalled * 1000)


async def _cancelled_reply(engine: Any, stream: str) -> float:
    """ms from cancel(), right after the reply's first audio, until the engine's worker let go of it."""
    handle = engine.synthesize(LONG_SENTENCE, stream=stream)
    async for _ in handle:
        break
    cancelled = time.monotonic()
    handle.cancel()
    stopped = await asyncio.wait_for(handle.stopped(), timeout=60)
    return (stopped - cancelled) * 1000


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from livekit.plugins import chatterbox
    from livekit.plugins.chatterbox import testing

    from ..settings import Settings

    settings = Settings()
    device = args.device or settings.device
    load = testing.load_engine if args.model.startswith("synthetic-") else chatterbox.load_engine
    with contextlib.redirect_stdout(sys.stderr):  # the watermarker prints at load; stdout is for the result
        engine = await asyncio.to_thread(load, args.model, device, settings.dtype)

    started = time.monotonic()
    replies = await asyncio.gather(
        *(_reply(engine, REPLIES[i % len(REPLIES)], f"bench-{i}") for i in range(args.streams))
    )
    elapsed = time.monotonic() - started
    audio_seconds = sum(reply.audio_seconds for reply in replies)
    cancels = await asyncio.gather(*(_cancelled_reply(engine, f"cancel-{i}") for i in range(args.streams)))
    return {
        "benchmark": "tts",
        "model": engine.model_name,
        "device": str(engine.device),
        "streams": args.streams,
        "first_audio_ms": percentiles([reply.first_audio_ms for reply in replies]),
        "stall_ms": percentiles([reply.stall_ms for reply in replies]),
        "rtf": round(elapsed / audio_seconds, 3),
        "audio_seconds": round(audio_seconds, 2),
        "wall_seconds": round(elapsed, 2),
        "cancel_stop_ms": percentiles(list(cancels)),
        "max_batch": engine.stats.max_batch,
        "max_flow_batch": engine.stats.max_flow_batch,
        "gpu_mem_mb": gpu_mem_mb(engine.device),
    }


def format_table(result: dict[str, Any]) -> str:
    first, stall, cancel = result["first_audio_ms"], result["stall_ms"], result["cancel_stop_ms"]
    rows = [
        ("model", f"{result['model']} on {result['device']}"),
        ("streams", str(result["streams"])),
        ("first audio p50 / p95", f"{first['p50']} / {first['p95']} ms"),
        ("silence after first audio p50 / p95", f"{stall['p50']} / {stall['p95']} ms per reply"),
        (
            "real-time factor",
            f"{result['rtf']} ({result['audio_seconds']} s audio in {result['wall_seconds']} s)",
        ),
        ("cancel → stopped p50 / p95", f"{cancel['p50']} / {cancel['p95']} ms"),
        ("most streams in one T3 step", str(result["max_batch"])),
        ("most chunks in one flow call", str(result["max_flow_batch"])),
        ("peak GPU memory", "n/a (CPU)" if result["gpu_mem_mb"] is None else f"{result['gpu_mem_mb']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
