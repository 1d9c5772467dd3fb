"""A simulated caller in a LiveKit room (the `livekit` rtc SDK): publishes scripted speech as its microphone,
records the agent's audio and what the agent sends to the room, each with a monotonic timestamp.

Messages use the embedded caller's shapes, so tests and benchmarks read both alike:
`{"type": "transcript", "role": "user"|"agent", "text", "final"}` from `lk.transcription` text streams,
`{"type": "agent_state", "state"}` from the agent's `lk.agent.state` attribute, and
`{"type": "participant_joined"|"participant_left", "identity", "kind"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc

from .recording import PACKET, SAMPLE_RATE, CallRecording, SpeechQueue, level

TRANSCRIPTION_TOPIC = "lk.transcription"
AGENT_STATE = "lk.agent.state"


class NoAgentAvailable(TimeoutError):
    """No agent joined the room in time: every worker is busy (load 1.0), or none is registered."""


@dataclass
class RoomCaller(CallRecording):
    """`await RoomCaller.join(url, token)`; close with `await caller.close()`."""

    room: rtc.Room = field(default_factory=rtc.Room)
    source: rtc.AudioSource = field(
        default_factory=lambda: rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    )
    joined_at: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    async def join(cls, url: str, token: str, echo_gain: float = 0.0) -> RoomCaller:
        """`echo_gain`: see `SpeechQueue`."""
        caller = cls(speech=SpeechQueue(echo_gain=echo_gain))
        room = caller.room
        room.on("participant_connected", caller._on_joined)
        room.on("participant_disconnected", caller._on_left)
        room.on("track_subscribed", caller._on_track)
        room.on("participant_attributes_changed", caller._on_attributes)
        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, caller._on_transcription)
        caller.joined_at = time.monotonic()
        await room.connect(url, token)
        for participant in room.remote_participants.values():  # already there before we joined
            caller._on_joined(participant)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", caller.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
        caller._spawn(caller._microphone())
        return caller

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    def agent_joined_at(self) -> float | None:
        joined = self.messages("participant_joined", kind="agent")
        return joined[0].at if joined else None

    async def wait_for_agent(self, timeout: float) -> float:
        """Seconds from joining the room to the agent's audio track arriving; `NoAgentAvailable` if none
        arrives within `timeout`."""
        try:
            await self.wait_for(lambda: self.messages("agent_track"), timeout, "the agent")
        except TimeoutError:
            raise NoAgentAvailable(
                f"no agent joined room {self.room.name!r} within {timeout:.0f} s: every worker is busy or "
                "none is registered for this agent name"
            ) from None
        return self.messages("agent_track")[0].at - self.joined_at

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.room.disconnect()
        await self.source.aclose()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _microphone(self) -> None:
        """Real-time pacing by our own clock, so `say()` returns when its audio has actually been sent."""
        t0 = time.monotonic()
        for n in range(1 << 62):
            await asyncio.sleep(max(0.0, t0 + n * PACKET / SAMPLE_RATE - time.monotonic()))
            frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, PACKET)
            np.frombuffer(frame.data, dtype=np.int16)[:] = self.speech.next_packet()
            await self.source.capture_frame(frame)

    def _on_joined(self, participant: rtc.RemoteParticipant) -> None:
        kind = "agent" if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT else "other"
        self.record({"type": "participant_joined", "identity": participant.identity, "kind": kind})
        # a state set before the participant reached us comes with it, not as a change
        if AGENT_STATE in participant.attributes:
            self.record({"type": "agent_state", "state": participant.attributes[AGENT_STATE]})

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        self.record({"type": "participant_left", "identity": participant.identity})

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if AGENT_STATE in changed:
            self.record({"type": "agent_state", "state": changed[AGENT_STATE]})

    def _on_track(
        self, track: rtc.Track, _: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self.record({"type": "agent_track", "identity": participant.identity})
            self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, np.int16)
                self.audio.append((time.monotonic(), level(pcm)))
                self.speech.hear(pcm)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    def _on_transcription(self, reader: rtc.TextStreamReader, sender: str) -> None:
        role = "user" if sender == self.identity else "agent"

        async def read() -> None:
            text = ""
            async for delta in reader:
                text += delta
                self.record({"type": "transcript", "role": role, "text": text, "final": False})
            final = (reader.info.attributes or {}).get("lk.transcription_final") == "true"
            self.record({"type": "transcript", "role": role, "text": text, "final": final})

        self._spawn(read())
