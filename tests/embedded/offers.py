"""Offers as browsers send them, and a real aiortc offer, for the offer tests."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

_FP = ":".join(f"{i:02X}" for i in range(32))

# Chrome's shape (audio + data channel, trickle candidates including an mDNS one), with fixed values
CHROME_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 3a1c",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1467250027 1 udp 2122260223 10.203.0.1 46243 typ host generation 0 network-id 1",
        (
            "a=candidate:2999745851 1 udp 2113937151 3b0e7c1e-2ef3-4a33-a1f0-0a3f1b4e5f2a.local 59335 typ host "
            "generation 0 network-cost 999"
        ),
        "a=ice-ufrag:Oyef",
        "a=ice-pwd:7QCXR3sLTFpCk3xGEmcgMtHU",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {_FP}",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:3a1c 7d0e",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:1001 cname:abcdEFGH",
        "a=ssrc:1001 msid:3a1c 7d0e",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:Oyef",
        "a=ice-pwd:7QCXR3sLTFpCk3xGEmcgMtHU",
        "a=ice-options:trickle",
        f"a=fingerprint:sha-256 {_FP}",
        "a=setup:actpass",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "",
    ]
)

# Firefox's shape: fingerprint and ICE options at session level, extmap directions, end-of-candidates
FIREFOX_OFFER = "\r\n".join(
    [
        "v=0",
        "o=mozilla...THIS_IS_SDPARTA-99.0 4294967296 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        f"a=fingerprint:sha-256 {_FP}",
        "a=group:BUNDLE 0 1",
        "a=ice-options:trickle",
        "a=msid-semantic:WMS *",
        "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101",
        "c=IN IP4 0.0.0.0",
        "a=candidate:0 1 UDP 2122252543 10.203.0.1 55555 typ host",
        "a=end-of-candidates",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
        "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
        "a=fmtp:101 0-15",
        "a=ice-pwd:4f3b5c1a0e9d8c7b6a5f4e3d2c1b0a99",
        "a=ice-ufrag:8e7d6c5b",
        "a=mid:0",
        "a=msid:{5b1a} {9c2d}",
        "a=rtcp-mux",
        "a=rtpmap:109 opus/48000/2",
        "a=rtpmap:9 G722/8000/1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=setup:actpass",
        "a=ssrc:2655508255 cname:{0a1b2c3d}",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=sendrecv",
        "a=ice-pwd:4f3b5c1a0e9d8c7b6a5f4e3d2c1b0a99",
        "a=ice-ufrag:8e7d6c5b",
        "a=mid:1",
        "a=setup:actpass",
        "a=sctp-port:5000",
        "a=max-message-size:1073741823",
        "",
    ]
)


async def aiortc_offer(*, audio: bool = True, data: bool = True) -> str:
    """A real offer from aiortc (what agent/bench/caller.py sends); its peer is closed again."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTrack(AudioStreamTrack())
    if data:
        pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp
