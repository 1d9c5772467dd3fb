"""Server-side echo cancellation for embedded calls (VOICE_AGENT_ECHO_CANCELLATION).

A caller on a loudspeaker without echo cancellation of its own (a speakerphone, a kiosk, some SIP phones, a
raw aiortc client) sends the agent's own voice back; with a barge-in tuned to react in a fraction of a second,
the agent would pause for itself. WebRTC's audio processing module (AEC3, through livekit's `rtc` bindings)
removes it here: every packet the agent sends is its far-end reference, every packet heard from the caller
is cleaned before the VAD and STT see it. On audio without echo it leaves the caller's voice as it is.
"""

from __future__ import annotations

from livekit import rtc

SAMPLE_RATE = 48000
_TEN_MS = SAMPLE_RATE // 100
_TEN_MS_BYTES = 2 * _TEN_MS


class EchoCanceller:
    def __init__(self) -> None:
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._apm.set_stream_delay_ms(0)  # unknown network round trip: AEC3 estimates the delay itself
        self._far = bytearray()
        self._near = bytearray()

    def played(self, pcm: bytes) -> None:
        """Mono int16 48 kHz the agent just sent to the caller."""
        self._far += pcm
        while len(self._far) >= _TEN_MS_BYTES:
            chunk = bytes(self._far[:_TEN_MS_BYTES])
            del self._far[:_TEN_MS_BYTES]
            self._apm.process_reverse_stream(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, _TEN_MS))

    def clean(self, pcm: bytes) -> bytes:
        """Mono int16 48 kHz heard from the caller → the same without the agent's echo. Returns whole 10 ms
        frames (the rest waits for the next call), so the length may differ from the input's by up to 10 ms."""
        self._near += pcm
        out = bytearray()
        while len(self._near) >= _TEN_MS_BYTES:
            frame = rtc.AudioFrame(bytes(self._near[:_TEN_MS_BYTES]), SAMPLE_RATE, 1, _TEN_MS)
            del self._near[:_TEN_MS_BYTES]
            self._apm.process_stream(frame)
            out += frame.data.cast("b")
        return bytes(out)
