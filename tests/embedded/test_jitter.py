"""The embedded peer holds caller audio for VOICE_AGENT_RECEIVE_JITTER_PACKETS packets, not aiortc's four."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer

from agent.bench.caller import _Microphone
from agent.bench.recording import SpeechQueue
from agent.embedded.jitter import _BUFFER, set_peer_audio_prefetch


async def test_the_audio_receivers_prefetch_what_is_asked() -> None:
    caller, agent = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
    try:
        caller.addTrack(_Microphone(SpeechQueue()))
        await caller.setLocalDescription(await caller.createOffer())
        await agent.setRemoteDescription(caller.localDescription)
        (transceiver,) = agent.getTransceivers()
        assert getattr(transceiver.receiver, _BUFFER)._prefetch == 4, "aiortc's own default (what we replace)"
        set_peer_audio_prefetch(agent, 1)
        buffer = getattr(transceiver.receiver, _BUFFER)
        assert isinstance(buffer, JitterBuffer) and buffer._prefetch == 1 and buffer.capacity == 16
    finally:
        await caller.close()
        await agent.close()
