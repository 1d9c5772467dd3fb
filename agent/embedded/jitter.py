"""How much received audio aiortc holds back before decoding it.

aiortc gives every audio receiver a `JitterBuffer(capacity=16, prefetch=4)`: each packet is decoded only once
four newer ones have arrived, so everything the agent hears is 80 ms old, and a barge-in takes 80 ms longer
than it has to on a clean network. aiortc has no public knob for it; `set_audio_prefetch` replaces the buffer
of a receiver that has not received a packet yet (right after `setRemoteDescription`) with one holding
`packets` packets (VOICE_AGENT_RECEIVE_JITTER_PACKETS). Late or reordered packets beyond that are dropped, as
they are with aiortc's own buffer beyond its four."""

from __future__ import annotations

import logging

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer

logger = logging.getLogger("voice_agent.embedded")

_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc 1.x: RTCRtpReceiver.__init__ sets it, _handle_rtp_packet reads it
_CAPACITY = 16  # aiortc's, for audio


def set_audio_prefetch(receiver: RTCRtpReceiver, packets: int) -> bool:
    """False (and aiortc's default stays) if this aiortc keeps its buffer elsewhere."""
    current = getattr(receiver, _BUFFER, None)
    if not isinstance(current, JitterBuffer) or current.capacity != _CAPACITY:
        logger.warning("cannot set the receive jitter buffer of this aiortc version: keeping its default")
        return False
    setattr(receiver, _BUFFER, JitterBuffer(capacity=_CAPACITY, prefetch=packets))
    return True


def set_peer_audio_prefetch(pc: RTCPeerConnection, packets: int) -> None:
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            set_audio_prefetch(transceiver.receiver, packets)
