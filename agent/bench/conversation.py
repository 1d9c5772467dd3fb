"""One simulated caller's conversation and what it measures, whatever the transport (`CallRecording`).

The caller asks `turns` questions and lets each reply play out, then asks once more and talks over the
reply (barge-in). Every figure is taken at the caller, from the audio it sends and receives:
* voice-to-voice: last sample of the question sent → first agent audio frame with energy received;
* barge-in stop: first sample of the interruption sent → last agent audio frame with energy before the
  agent falls silent;
* gaps: silent frames inside a reply (the agent's output ran dry: an underrun), as seconds per reply;
* false barge-in: a reply the agent paused or cut while the caller said nothing (e.g. its own voice came
  back through the caller's microphone).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from .recording import SAMPLE_RATE, CallRecording

LOUD = 200.0  # mean |int16| of a frame of speech (agent audio "with energy")
SILENT = 1.0  # below: the agent sent nothing (digital silence)
QUIET_RUN = 0.3  # seconds of no energy that end the agent's speech after a barge-in


@dataclass
class Phrases:
    question: np.ndarray
    interruption: np.ndarray

    @property
    def interruption_onset(self) -> float:
        """Seconds of near-silence the interruption clip starts with (the barge-in begins after them)."""
        return onset(self.interruption)


def onset(pcm: np.ndarray, *, window: int = 480) -> float:
    """Start of the first 10 ms window of `pcm` (48 kHz) whose mean |amplitude| reaches speech level."""
    for start in range(0, len(pcm) - window + 1, window):
        if np.abs(pcm[start : start + window].astype(np.int32)).mean() >= LOUD:
            return start / SAMPLE_RATE
    return 0.0


@dataclass
class CallerResult:
    voice_to_voice: list[float] = field(default_factory=list)
    barge_in_stop: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    replies: int = 0
    false_barge_ins: int = 0
    error: str | None = None


async def converse(caller: CallRecording, phrases: Phrases, turns: int, timeout: float) -> CallerResult:
    result = CallerResult()
    try:
        await caller.silence(1.0)  # the session starts as the connection does
        for _ in range(turns):
            first, end = await _ask(caller, phrases.question, timeout, result)
            result.replies += 1
            result.gaps.append(gap_seconds(caller.audio, first, end))
            if _paused_during(caller, first):
                result.false_barge_ins += 1
            await caller.silence(0.5)
        await _barge_in(caller, phrases, timeout, result)
    except TimeoutError as e:
        result.error = str(e)
    return result


async def _ask(
    caller: CallRecording, question: np.ndarray, timeout: float, result: CallerResult
) -> tuple[float, float]:
    """Ask and wait for the whole reply; returns when its first and last audible frames arrived."""
    spoke_until = await caller.say(question)
    first = await caller.wait_for_value(lambda: caller.first_audio_after(spoke_until), timeout, "a reply")
    result.voice_to_voice.append(first - spoke_until)
    await caller.wait_for(lambda: _reply_done(caller, first), timeout * 4, "the end of the reply")
    end = caller.last_audio(level=LOUD) or first
    return first, end


async def _barge_in(caller: CallRecording, phrases: Phrases, timeout: float, result: CallerResult) -> None:
    spoke_until = await caller.say(phrases.question)
    first = await caller.wait_for_value(lambda: caller.first_audio_after(spoke_until), timeout, "a reply")
    result.voice_to_voice.append(first - spoke_until)
    # talk over the agent while its voice is on the line (not in a pause between words or sentences)
    await asyncio.sleep(1.0)
    await caller.wait_for(lambda: _hearing(caller), timeout, "the agent's voice")
    speaking = asyncio.ensure_future(caller.say(phrases.interruption))
    try:
        await asyncio.sleep(0)  # say() queues the clip: `started` is now its own
        assert caller.speech.started is not None
        started = await caller.speech.started + phrases.interruption_onset
        stopped = await caller.wait_for_value(
            lambda: _fell_silent(caller, started), timeout, "the agent to stop"
        )
        result.barge_in_stop.append(stopped - started)
    finally:
        await speaking
    await caller.silence(1.0)


def _hearing(caller: CallRecording) -> bool:
    recent = caller.audio[-3:]
    return len(recent) == 3 and all(lvl >= LOUD for _, lvl in recent)


def _fell_silent(caller: CallRecording, since: float) -> float | None:
    """The last loud frame after `since` that QUIET_RUN seconds of quiet followed, once they have."""
    last_loud = since
    for at, lvl in caller.audio:
        if at <= since:
            continue
        if lvl >= LOUD:
            last_loud = at
        elif at - last_loud >= QUIET_RUN:
            return last_loud
    return None


def _reply_done(caller: CallRecording, first: float) -> bool:
    finals = [e for e in caller.messages("transcript", role="agent", final=True) if e.at > first]
    return bool(finals) and caller.audio[-1][0] - (caller.last_audio(level=LOUD) or 0.0) >= QUIET_RUN


def _paused_during(caller: CallRecording, first: float) -> bool:
    """The agent left `speaking` (paused for what it took as the caller's voice) in the reply that began
    at `first`, before the reply's final transcript."""
    for event in caller.events:
        message = event.message
        if event.at <= first:
            continue
        if message.get("type") == "transcript" and message.get("role") == "agent" and message.get("final"):
            return False
        if message.get("type") == "false_interruption" or (
            message.get("type") == "agent_state" and message.get("state") != "speaking"
        ):
            return True
    return False


def gap_seconds(audio: list[tuple[float, float]], first: float, end: float, *, frame: float = 0.02) -> float:
    """Seconds of digital silence between a reply's first and last audible frames."""
    return frame * sum(1 for at, lvl in audio if first < at < end and lvl < SILENT)
