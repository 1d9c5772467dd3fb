"""One browser connection: its RTCPeerConnection and the AgentSession that talks over it."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from livekit.agents.utils import shortuuid

from ..models import Models
from ..session import build_agent, build_session
from ..settings import Settings
from .audio_io import PeerAudioInput, PeerAudioOutput
from .events import AgentTranscriptOutput, encode, relay_session_events

logger = logging.getLogger("voice_agent.embedded")

_MAX_QUEUED_MESSAGES = 256  # events produced before the page's data channel opens


class BadOffer(ValueError):
    """The client's offer cannot start a call (malformed SDP, no audio)."""


class PeerSession:
    def __init__(self, settings: Settings, models: Models, on_closed: Callable[[PeerSession], None]) -> None:
        self.id = shortuuid("peer_")
        self._settings = settings
        self._on_closed = on_closed
        ice = [RTCIceServer(urls=url) for url in settings.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        self.output = PeerAudioOutput()
        self.session = build_session(settings, models)
        self._channel: RTCDataChannel | None = None
        self._queued: collections.deque[str] = collections.deque(maxlen=_MAX_QUEUED_MESSAGES)
        self._closing: asyncio.Task[None] | None = None

    async def accept(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer the offer and start the agent on the caller's audio track."""
        mic: list[MediaStreamTrack] = []
        self.pc.on("track", lambda track: mic.append(track) if track.kind == "audio" else None)
        self.pc.on("datachannel", self._attach_channel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        try:
            await self.pc.setRemoteDescription(offer)
        except Exception as e:  # aiortc raises ValueError, KeyError, ... on unparsable SDP
            raise BadOffer(f"invalid SDP offer: {e or type(e).__name__}") from e
        if not mic:
            raise BadOffer("the offer has no audio track")
        self.pc.addTrack(self.output.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())

        self.session.input.audio = PeerAudioInput(mic[0])
        self.session.output.audio = self.output
        self.session.output.transcription = AgentTranscriptOutput(self.send)
        relay_session_events(self.session, self.send)
        self.session.on("close", lambda _: self.close())
        await self.session.start(build_agent(self._settings))
        # a client that never completes ICE/DTLS (closed tab, blocked UDP) must not hold a session slot
        asyncio.get_running_loop().call_later(self._settings.connect_timeout, self._close_if_not_connected)
        logger.info("session %s started", self.id)
        return self.pc.localDescription

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(data)
        else:
            self._queued.append(data)

    def close(self) -> asyncio.Task[None]:
        """Idempotent; the returned task completes once the session and the connection are closed."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close())
        return self._closing

    async def _close(self) -> None:
        try:
            await self.session.aclose()
        except Exception:
            logger.exception("session %s did not close cleanly", self.id)
        await self.pc.close()
        logger.info("session %s closed", self.id)
        self._on_closed(self)

    def _attach_channel(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        def flush() -> None:
            while self._queued:
                channel.send(self._queued.popleft())

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)

    def _close_if_not_connected(self) -> None:
        if self.pc.connectionState in ("new", "connecting"):
            logger.warning(
                "session %s: peer did not connect within %.0f s", self.id, self._settings.connect_timeout
            )
            self.close()

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.close()
