"""ChatterboxEngine: one model on one device, served by one worker thread to any number of streams.

The engine is a thin façade: requests go to the Scheduler (scheduler.py: the thread, batching, supervision),
which runs the model math of SynthesisSteps (steps/); audio comes back to the requesting event loop through a
SynthesisHandle (handle.py).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Sequence

from .handle import End, Item, SynthesisError, SynthesisHandle
from .health import EngineHealth
from .jobs import EngineStats, Request
from .loading import LoadedModel, ModelLoadError, load_model, resolve_device
from .log import logger
from .models import DEFAULT_CHUNK_TOKENS, DEFAULT_MODEL, SAMPLE_RATE
from .scheduler import Scheduler
from .steps import SamplingParams, SynthesisSteps

DEFAULT_WATCHDOG_TIMEOUT = 30.0
DEFAULT_WARMUP_TIMEOUT = 300.0
_WARMUP_TEXT = "Hello, this is a warm-up."

ModelLoader = Callable[[str, str, str], LoadedModel]
"""(model, device, dtype) -> LoadedModel, raising ModelLoadError"""


class ChatterboxEngine:
    """Owns one loaded Chatterbox model and the one thread that runs it. Share it between sessions.

    steps: the model math the worker runs (default SynthesisSteps(model)); a subclass can inject faults.
    watchdog_timeout: a step running longer than this many seconds makes health() unhealthy.
    warmup_timeout: warmup() gives up (ModelLoadError) after this many seconds.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        steps: SynthesisSteps | None = None,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    ) -> None:
        self._model = model
        self._warmup_timeout = warmup_timeout
        self._steps = steps or SynthesisSteps(model)
        self._scheduler = Scheduler(self._steps, name=model.name, watchdog_timeout=watchdog_timeout)

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def steps(self) -> SynthesisSteps:
        """The model math the worker runs (worker thread only)."""
        return self._steps

    @property
    def model_name(self) -> str:
        return self._model.name

    @property
    def device(self) -> str:
        return str(self._model.device)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def closed(self) -> bool:
        """Closed, or its worker thread died: it takes no more requests."""
        return self._scheduler.closed

    @property
    def stats(self) -> EngineStats:
        return self._scheduler.stats

    def health(self) -> EngineHealth:
        """Any thread, cheap: is the worker alive, stalled, failing; how much work is waiting."""
        return self._scheduler.health()

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None = None,
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
        temperature: float = 0.8,
        watermark: bool = True,
        chunk_tokens: Sequence[int] = DEFAULT_CHUNK_TOKENS,
        stream: str | None = None,
        seed: int | None = None,
    ) -> SynthesisHandle:
        """Queue `text`; read the audio from the returned handle. Call from a running event loop.

        voice: None for the model's built-in voice, or a reference audio file (prepared once, then cached).
        Turbo ignores exaggeration and cfg_weight. watermark: apply the Perth watermark to this audio.
        chunk_tokens: speech tokens per chunk step, first chunk first (the last size repeats); a chunk's audio
            is delivered as soon as it is vocoded.
        stream: requests with the same stream id run in submission order (the sentences of one reply); other
            streams run alongside, their T3 steps batched. None: a stream of its own.
        seed: makes this request's sampling and vocoder noise reproducible: the same speech tokens whatever
            runs alongside it, and the same audio unless its chunks joined other streams' flow calls early
            (scheduler.FLOW_JOIN_FILL), which moves chunk boundaries; None draws from the global RNG.

        Raises SynthesisError (not retryable) if the engine is closed or its thread died.
        """
        if not chunk_tokens or min(chunk_tokens) < 1:
            raise ValueError("chunk_tokens must be positive token counts")
        handle = SynthesisHandle(uuid.uuid4().hex[:12], asyncio.get_running_loop())
        params = SamplingParams.for_variant(
            self._model.variant, temperature=temperature, cfg_weight=cfg_weight
        )
        self._scheduler.submit(
            Request(
                text,
                voice,
                exaggeration,
                params,
                watermark,
                tuple(chunk_tokens),
                stream or handle.request_id,
                handle,
                seed,
            )
        )
        return handle

    def warmup(self) -> None:
        """Blocking: synthesize a short text in the built-in voice (if any) on the worker thread.

        Raises ModelLoadError if it fails or takes longer than warmup_timeout."""
        if self._model.tts.conds is None:
            logger.info("model %r has no built-in voice: skipping warm-up", self.model_name)
            return
        sink = _WarmupSink()
        params = SamplingParams.for_variant(self._model.variant, temperature=0.8, cfg_weight=0.5)
        self._scheduler.submit(
            Request(_WARMUP_TEXT, None, 0.5, params, True, DEFAULT_CHUNK_TOKENS, "warmup", sink)
        )
        if not sink.done.wait(self._warmup_timeout):
            sink.cancel()
            raise ModelLoadError(
                f"Chatterbox model {self.model_name!r} loaded but its warm-up synthesis did not finish within "
                f"{self._warmup_timeout:g} s ({self.health().reason or 'no step stalled'})"
            )
        if sink.error is not None:
            raise ModelLoadError(
                f"Chatterbox model {self.model_name!r} loaded but its warm-up synthesis failed: {sink.error}"
            ) from sink.error

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker: running requests stop at their next check and fail, as do queued ones.

        wait: block until the worker thread has ended (a stalled step keeps it from ending)."""
        self._scheduler.close(wait=wait)


class _WarmupSink:
    """A request's sink that a blocking caller waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: SynthesisError | None = None
        self.cancelled = False
        self.cancelled_at = 0.0

    def cancel(self) -> None:
        self.cancelled = True

    def deliver(self, item: Item) -> None:
        if isinstance(item, SynthesisError):
            self.error = item
        if isinstance(item, SynthesisError | End):
            self.done.set()

    def release(self, at: float) -> None:
        self.done.set()


_engines: dict[tuple[str, str, str], ChatterboxEngine] = {}
_engines_lock = threading.Lock()


def load_engine(
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str = "float32",
    *,
    watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    loader: ModelLoader = load_model,
) -> ChatterboxEngine:
    """Blocking (run it in a thread): the process-wide engine for these settings, loaded and warmed up once.

    A closed or dead engine is replaced. The timeouts apply to a new engine only. `loader` loads the model on
    a cache miss (livekit.plugins.chatterbox.testing passes its random-weight builder). Raises ModelLoadError.
    """
    key = (model, str(resolve_device(device)), dtype)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None or engine.closed:
            engine = ChatterboxEngine(
                loader(model, device, dtype), watchdog_timeout=watchdog_timeout, warmup_timeout=warmup_timeout
            )
            try:
                engine.warmup()
            except ModelLoadError:
                engine.close(wait=False)  # a stalled warm-up would never let the thread end
                raise
            _engines[key] = engine
        return engine
