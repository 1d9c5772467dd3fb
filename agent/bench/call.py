"""`voice-agent bench call`: N simulated callers talk to the agent at once over real WebRTC.

`--target embedded` (default): aiortc callers against `voice-agent serve` (`--url` of a running one, else one is
started here with this environment's settings); `--target room`: callers in LiveKit rooms (the rtc SDK) on
LIVEKIT_URL, answered by whatever workers are registered there. Each caller speaks `--turns` questions and one
barge-in (agent/bench/conversation.py says what is measured). `--llm scripted` answers with a fixed local reply
(no provider latency, no key); `--echo-db -10` puts the agent's own voice back into every caller's microphone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import psutil

from ..errors import StartupError
from ..settings import Settings
from .agent_process import ProcessSampler, ServeProcess
from .caller import Caller
from .conversation import CallerResult, Phrases, converse
from .room_caller import RoomCaller
from .scripted_llm import ScriptedReplyServer
from .speech import speak
from .stats import percentiles

QUESTION = "What will the weather be like tomorrow afternoon?"
INTERRUPTION = "Stop, wait a moment please."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--callers", type=int, default=1, help="simulated callers at once (default 1)")
    p.add_argument(
        "--turns", type=int, default=3, help="questions per caller before the barge-in (default 3)"
    )
    p.add_argument("--target", choices=["embedded", "room"], default="embedded")
    p.add_argument("--url", help="embedded: a running `voice-agent serve` (default: start one here)")
    p.add_argument(
        "--llm",
        choices=["scripted", "settings"],
        default="scripted",
        help="scripted: a local fixed reply (default); settings: the agent's configured LLM (e.g. Groq). "
        "Applies to the agent started here",
    )
    p.add_argument("--echo-db", type=float, help="the agent's voice in the callers' microphones, e.g. -10")
    p.add_argument("--agent-pid", type=int, help="sample this process's CPU and memory (a worker, a serve)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")
    p.add_argument("--startup-timeout", type=float, default=900.0, help="seconds for the agent to load")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.callers < 1 or args.turns < 0:
        raise StartupError("--callers must be >= 1 and --turns >= 0")
    cache = Path(tempfile.gettempdir()) / "voice-agent-bench-speech"
    phrases = Phrases(question=speak(QUESTION, cache), interruption=speak(INTERRUPTION, cache))
    echo_gain = 10 ** (args.echo_db / 20) if args.echo_db is not None else 0.0
    async with contextlib.AsyncExitStack() as stack:
        url, pid = args.url, args.agent_pid
        if args.target == "embedded" and url is None:
            agent = await _start_agent(args, stack)
            url, pid = agent.url, agent.pid
        sampler = ProcessSampler(psutil.Process(pid)) if pid else None
        if sampler:
            sampler.start()
        results = await asyncio.gather(
            *(_one_caller(args, i, url, phrases, echo_gain) for i in range(args.callers))
        )
        process = sampler.stop() if sampler else {}
    return summarize(args, results, process)


async def _start_agent(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> ServeProcess:
    env: dict[str, str] = {}
    if args.llm == "scripted":
        llm = await ScriptedReplyServer().start()
        stack.push_async_callback(llm.aclose)
        env = {
            "VOICE_AGENT_LLM_BASE_URL": llm.base_url,
            "VOICE_AGENT_LLM_FALLBACK_MODELS": "[]",
            "GROQ_API_KEY": os.environ.get("GROQ_API_KEY", "scripted"),
        }
    agent = ServeProcess(env)
    stack.callback(agent.stop)
    await agent.start(args.startup_timeout)
    return agent


async def _one_caller(
    args: argparse.Namespace, index: int, url: str | None, phrases: Phrases, echo_gain: float
) -> CallerResult:
    await asyncio.sleep(0.7 * index)  # callers whose turns interleave, as real ones would
    caller: Caller | RoomCaller
    try:
        if args.target == "embedded":
            assert url is not None
            token = os.environ.get("VOICE_AGENT_API_TOKEN")
            headers = {"Authorization": f"Bearer {token}"} if token else None
            caller = await Caller.connect(url, echo_gain=echo_gain, headers=headers)
        else:
            caller = await _join_room(index, echo_gain, args.timeout)
    except (RuntimeError, TimeoutError, OSError) as e:
        return CallerResult(error=f"caller {index} could not connect: {e}")
    try:
        return await converse(caller, phrases, args.turns, args.timeout)
    finally:
        await caller.close()


async def _join_room(index: int, echo_gain: float, timeout: float) -> RoomCaller:
    from .. import rooms

    settings = Settings()
    if not settings.has_livekit:
        raise StartupError("--target room needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    room, identity = f"bench-{secrets.token_hex(4)}-{index}", f"bench-caller-{index}"
    assert settings.livekit_url is not None
    caller = await RoomCaller.join(
        settings.livekit_url, rooms.room_token(settings, room, identity), echo_gain
    )
    await caller.wait_for_agent(timeout)
    return caller


def summarize(
    args: argparse.Namespace, results: list[CallerResult], process: dict[str, float]
) -> dict[str, Any]:
    def ms(values: list[float]) -> dict[str, float | None]:
        return percentiles([1000.0 * v for v in values])

    def every(name: str) -> list[float]:
        return [v for r in results for v in getattr(r, name)]

    replies = sum(r.replies for r in results)
    false_barge_ins = sum(r.false_barge_ins for r in results)
    return {
        "target": args.target,
        "callers": args.callers,
        "turns": args.turns,
        "echo_db": args.echo_db,
        "voice_to_voice_ms": ms(every("voice_to_voice")),
        "barge_in_stop_ms": ms(every("barge_in_stop")),
        "gap_ms_per_reply": ms(every("gaps")),
        "replies": replies,
        "false_barge_ins": false_barge_ins,
        "false_barge_in_rate": round(false_barge_ins / replies, 3) if replies else None,
        "agent_process": process,
        "errors": [r.error for r in results if r.error],
    }


def format_table(result: dict[str, Any]) -> str:
    def pair(key: str) -> str:
        p = result[key]
        return "-" if p["p50"] is None else f"{p['p50']:.0f} / {p['p95']:.0f}"

    echo = "off" if result["echo_db"] is None else f"{result['echo_db']:g} dB"
    process = result["agent_process"]
    lines = [
        f"{result['callers']} caller(s) x {result['turns']} turns + 1 barge-in ({result['target']}, echo {echo})",
        f"voice-to-voice p50 / p95     {pair('voice_to_voice_ms')} ms",
        f"barge-in stop p50 / p95      {pair('barge_in_stop_ms')} ms",
        f"gaps per reply p50 / p95     {pair('gap_ms_per_reply')} ms",
        f"false barge-ins              {result['false_barge_ins']} of {result['replies']} replies",
    ]
    if process:
        lines.append(
            f"agent process                {process['cpu_percent']:.0f} % CPU, {process['rss_mb_peak']:.0f} MiB peak"
        )
    lines += [f"error: {e}" for e in result["errors"]]
    return "\n".join(lines)
