"""The model engines' gauges, read from the engines at scrape time, and the `GET /metrics` handler of
`serve`, `web` and the worker's health port.

A scrape is this process's default registry (the call metrics of agent/metrics.py, livekit-agents' `lk_agents_*`
worker metrics, the process and Python collectors) plus the engines of this process's `Models`, rendered off
the event loop. Means over a window come from the counters: `rate(step_seconds) / rate(steps)` is the mean step
time, `rate(batch_items) / rate(steps)` the mean batch size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import torch
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .models import Models


@dataclass(frozen=True)
class EngineReading:
    """One engine's numbers at one instant; each field is the metric `voice_agent_engine_<field>`."""

    up: bool
    healthy: bool
    queue_depth: int
    consecutive_failures: int
    active_streams: int
    last_batch_size: int
    last_step_seconds: float
    steps: int
    step_seconds: float
    batch_items: int


def read_engines(models: Models) -> dict[str, EngineReading]:
    """STT steps are the batched streaming steps; TTS steps are the batched T3 forward passes (one per token)."""
    stt, stt_health = models.stt.stats(), models.stt.health()
    tts, tts_health = models.tts.stats, models.tts.health()
    return {
        "stt": EngineReading(
            up=stt_health.alive,
            healthy=stt_health.healthy,
            queue_depth=stt_health.queue_depth,
            consecutive_failures=stt_health.consecutive_failures,
            active_streams=models.stt.active_streams,
            last_batch_size=stt.batch_sizes[-1] if stt.batch_sizes else 0,
            last_step_seconds=stt.step_seconds[-1] if stt.step_seconds else 0.0,
            steps=stt.steps,
            step_seconds=stt.compute_seconds,
            batch_items=stt.stream_inputs,
        ),
        "tts": EngineReading(
            up=tts_health.alive,
            healthy=tts_health.healthy,
            queue_depth=tts_health.queue_depth,
            consecutive_failures=tts_health.consecutive_failures,
            active_streams=tts.active_streams,
            last_batch_size=tts.last_batch,
            last_step_seconds=tts.last_step_seconds,
            steps=tts.decode_steps,
            step_seconds=tts.decode_seconds,
            batch_items=tts.decoded_rows,
        ),
    }


GAUGES = {
    "up": "1 while the engine's scheduler thread runs",
    "healthy": "1 while the engine can serve (alive, no stalled step, no failures in a row)",
    "queue_depth": "Work waiting for the engine (STT: requests and ready chunks; TTS: open requests)",
    "consecutive_failures": "Engine iterations that failed in a row",
    "active_streams": "Streams in the engine (STT: open transcription streams; TTS: replies)",
    "last_batch_size": "Inputs in the engine's latest batched step",
    "last_step_seconds": "Duration of the engine's latest batched step",
}
COUNTERS = {
    "steps": "Batched steps the engine ran",
    "step_seconds": "Time spent in the engine's batched steps",
    "batch_items": "Inputs over all batched steps (divided by steps: the mean batch size)",
}


class EngineCollector(Collector):
    """`voice_agent_engine_*{engine="stt"|"tts"}` and `voice_agent_gpu_memory_*{device}` (0 on the CPU)."""

    def __init__(self, models: Models) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        readings = read_engines(self._models)
        for name, doc in GAUGES.items():
            gauge = GaugeMetricFamily(f"voice_agent_engine_{name}", doc, labels=["engine"])
            for engine, reading in readings.items():
                gauge.add_metric([engine], float(getattr(reading, name)))
            yield gauge
        for name, doc in COUNTERS.items():
            counter = CounterMetricFamily(f"voice_agent_engine_{name}", doc, labels=["engine"])
            for engine, reading in readings.items():
                counter.add_metric([engine], float(getattr(reading, name)))
            yield counter
        yield from _gpu_memory(
            {torch.device(str(self._models.stt.device)), torch.device(self._models.tts.device)}
        )


def _gpu_memory(devices: set[torch.device]) -> Iterator[Metric]:
    allocated = GaugeMetricFamily(
        "voice_agent_gpu_memory_allocated_bytes",
        "GPU memory held by this process's tensors",
        labels=["device"],
    )
    used = GaugeMetricFamily(
        "voice_agent_gpu_memory_used_bytes",
        "GPU memory in use by every process on the GPU",
        labels=["device"],
    )
    total = GaugeMetricFamily("voice_agent_gpu_memory_total_bytes", "The GPU's memory", labels=["device"])
    for device in sorted(devices, key=str):
        if device.type == "cuda":
            free, size = torch.cuda.mem_get_info(device)
            values = (float(torch.cuda.memory_allocated(device)), float(size - free), float(size))
        else:
            values = (0.0, 0.0, 0.0)
        for family, value in zip((allocated, used, total), values, strict=True):
            family.add_metric([str(device)], value)
    yield from (allocated, used, total)


def render(engines: CollectorRegistry | None) -> bytes:
    """The text exposition of the default registry, then of the engines (blocking: run it in a thread)."""
    body = generate_latest(REGISTRY)
    return body + generate_latest(engines) if engines is not None else body


def metrics_handler(models: Models | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /metrics`, open like `/healthz`: aggregate numbers only, no ids or call content (README Security)."""
    engines: CollectorRegistry | None = None
    if models is not None:
        engines = CollectorRegistry(auto_describe=False)
        engines.register(EngineCollector(models))

    async def handler(_: web.Request) -> web.Response:
        body = await asyncio.to_thread(render, engines)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
