"""`voice-agent bench stt`: N concurrent live streams against ONE Parakeet engine, in real time.

Each stream plays speech-like utterances separated by silence, pushed as 20 ms frames paced by the clock,
and flushes the way the session does at the VAD's end of speech (`VAD_SILENCE` into the silence). Measured:
flush → final transcript latency, the engine's batched step latency and batch sizes, and RTFx (seconds of
audio streamed / seconds of engine compute). Engine knobs come from the app settings (VOICE_AGENT_STT_*),
so the benchmark runs what the agent would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from livekit.plugins import parakeet

FRAME_SECONDS = 0.02
VAD_SILENCE = 0.3  # the VAD's default min silence: the session flushes the STT this long after speech ends
FINALS_TIMEOUT = 30.0  # after the audio ends, how long to wait for outstanding finals
_CLIP_SECONDS = (1.2, 2.4, 1.6, 2.8, 2.0, 1.4, 2.2, 1.8)  # utterance lengths, whole 20 ms frames
_PAUSE_SECONDS = (0.6, 1.2)  # silence between utterances (the VAD's share included)
_CACHE_AWARE = {
    "synthetic-tiny": "synthetic-tiny-cache-aware",
    "synthetic-full": "synthetic-full-cache-aware",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int, default=4, help="concurrent streams (default 4)")
    parser.add_argument(
        "--model",
        default="synthetic-tiny",
        help="Hugging Face name, .nemo path, synthetic-tiny or synthetic-full (random weights; default "
        "synthetic-tiny)",
    )
    parser.add_argument(
        "--cache-aware",
        action="store_true",
        help="synthetic models: the cache-aware streaming architecture (real models: the checkpoint decides; "
        "the flag then checks it is cache-aware)",
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="audio per stream, in real time (default 30)"
    )
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default VOICE_AGENT_DEVICE)")


@dataclass
class _Caller:
    """One stream's script (audio, and the frame indices after which it flushes) and what came back."""

    audio: np.ndarray
    flush_frames: list[int]
    stream: parakeet.EngineStream | None = None
    flushed_at: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.errors) or len(self.latencies) == len(self.flush_frames)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from ..cli import load_settings
    from ..errors import StartupError
    from ..models import load_stt
    from .stats import gpu_mem_mb, percentiles

    if args.streams < 1 or args.seconds <= 0:
        raise StartupError("--streams must be >= 1 and --seconds > 0")
    os.environ.setdefault("NEMO_REDIRECT_LOGS_TO_STDERR", "1")  # stdout is for the result
    settings = load_settings(needs_llm=False)
    model = _CACHE_AWARE.get(args.model, args.model) if args.cache_aware else args.model
    engine = await asyncio.to_thread(
        load_stt, settings.model_copy(update={"stt_model": model, "device": args.device or settings.device})
    )
    if args.cache_aware and engine.family != "cache-aware":
        raise StartupError(f"--cache-aware: {model!r} is not a cache-aware streaming model")

    callers = await asyncio.to_thread(_scripts, args.streams, args.seconds, engine.sample_rate)
    before = engine.stats()
    start = time.perf_counter()
    await _play(engine, callers)
    wall = time.perf_counter() - start
    after = engine.stats()

    steps = after.steps - before.steps
    batch_sizes = after.batch_sizes[-steps:] if steps else []
    compute = after.compute_seconds - before.compute_seconds
    audio_seconds = sum(len(c.audio) for c in callers) / engine.sample_rate
    latencies = [lat * 1000 for c in callers for lat in c.latencies]
    return {
        "benchmark": "stt",
        "model": model,
        "family": engine.family,
        "device": str(engine.device),
        "dtype": str(engine.dtype).removeprefix("torch."),
        "engine": engine.describe(),
        "max_batch_size": engine.max_batch_size,
        "streams": args.streams,
        "seconds": args.seconds,
        "utterances": sum(len(c.flush_frames) for c in callers),
        "finals": len(latencies),
        "finals_per_stream": [len(c.latencies) for c in callers],
        "errors": [e for c in callers for e in c.errors],
        "final_latency_ms": percentiles(latencies),
        "step_latency_ms": percentiles([s * 1000 for s in after.step_seconds[-steps:]] if steps else []),
        "steps": steps,
        "mean_batch_size": round(sum(batch_sizes) / len(batch_sizes), 2) if batch_sizes else None,
        "audio_seconds": round(audio_seconds, 1),
        "compute_seconds": round(compute, 2),
        "rtfx": round(audio_seconds / compute, 1) if compute > 0 else None,
        "gpu_mem_mb": gpu_mem_mb(engine.device),
        "wall_seconds": round(wall, 1),
    }


def _scripts(streams: int, seconds: float, sample_rate: int) -> list[_Caller]:
    """Per stream: a random start offset (streams out of phase), then utterances and pauses drawn from a
    shared pool of clips, ending at the last flush; at least one utterance each."""
    import numpy as np
    from livekit.plugins.parakeet.testing import speech_like

    frame = round(FRAME_SECONDS * sample_rate)
    clips = [
        speech_like(d, sample_rate=sample_rate, seed=i)[: round(d / FRAME_SECONDS) * frame]
        for i, d in enumerate(_CLIP_SECONDS)
    ]
    callers = []
    for s in range(streams):
        rng = np.random.default_rng(s)
        parts = [np.zeros(frame * int(rng.integers(0, 50)), np.float32)]
        flushes: list[int] = []
        length = len(parts[0])
        while True:
            clip = clips[int(rng.integers(len(clips)))]
            flush = length + len(clip) + frame * round(VAD_SILENCE / FRAME_SECONDS)
            if flushes and flush > seconds * sample_rate:
                break
            pause = frame * round(float(rng.uniform(*_PAUSE_SECONDS)) / FRAME_SECONDS)
            parts += [clip, np.zeros(pause, np.float32)]
            flushes.append(flush // frame - 1)
            length += len(clip) + pause
        audio = np.concatenate(parts)[: (flushes[-1] + 1) * frame]
        callers.append(_Caller(audio, flushes))
    return callers


async def _play(engine: parakeet.ParakeetEngine, callers: list[_Caller]) -> None:
    """Push every caller's frames in real time, flush on cue, then wait (bounded) for the last finals."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def receive(caller: _Caller, update: parakeet.StreamUpdate | BaseException, at: float) -> None:
        if isinstance(update, BaseException):
            caller.errors.append(f"{type(update).__name__}: {update}")
        elif update.final and not update.end_of_utterance:
            caller.latencies.append(at - caller.flushed_at[len(caller.latencies)])
        changed.set()

    def listener(caller: _Caller) -> Any:
        # called on the engine thread: stamp the time there, hand over to the loop
        return lambda item: loop.call_soon_threadsafe(receive, caller, item, time.perf_counter())

    for caller in callers:
        caller.stream = engine.open_stream(listener(caller), listener(caller))
    frame = round(FRAME_SECONDS * engine.sample_rate)
    try:
        start = loop.time()
        for k in range(max(len(c.audio) for c in callers) // frame):
            await asyncio.sleep(max(0.0, start + k * FRAME_SECONDS - loop.time()))
            for caller in callers:
                if caller.errors or k * frame >= len(caller.audio):
                    continue
                assert caller.stream is not None
                caller.stream.push(caller.audio[k * frame : (k + 1) * frame])
                if k in caller.flush_frames:
                    caller.flushed_at.append(time.perf_counter())
                    caller.stream.flush()
        async with asyncio.timeout(FINALS_TIMEOUT):
            while not all(c.done for c in callers):
                changed.clear()
                await changed.wait()
    except TimeoutError:
        pass  # reported as finals < utterances
    finally:
        for caller in callers:
            if caller.stream is not None:
                caller.stream.close()


def format_table(result: dict[str, Any]) -> str:
    def ms(p: dict[str, float | None]) -> str:
        return "   ".join(f"{k} {'-' if v is None else f'{v:.1f} ms'}" for k, v in p.items())

    gpu = "n/a (CPU)" if result["gpu_mem_mb"] is None else f"{result['gpu_mem_mb']:.0f} MB peak"
    rows = [
        ("model", f"{result['model']} ({result['family']}), {result['device']} {result['dtype']}"),
        ("engine", result["engine"]),
        ("streams", f"{result['streams']} x {result['seconds']:g} s in real time"),
        (
            "finals",
            f"{result['finals']} of {result['utterances']} utterances, {len(result['errors'])} errors",
        ),
        ("final latency", ms(result["final_latency_ms"]) + "   (flush → final)"),
        ("step latency", ms(result["step_latency_ms"])),
        ("steps", f"{result['steps']}, mean batch size {result['mean_batch_size']}"),
        ("RTFx", f"{result['rtfx']} ({result['audio_seconds']} s of audio in {result['compute_seconds']} s)"),
        ("GPU memory", gpu),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
