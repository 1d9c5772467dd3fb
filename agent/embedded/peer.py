"""One browser connection: its RTCPeerConnection and the AgentSession that talks over it.

A peer is answered at once but its AgentSession is built and started only when ICE and DTLS have completed:
until then it is *pending*, costs a peer connection only and holds no session slot (`Sessions` counts and evicts pending peers); one that does not
connect within `VOICE_AGENT_CONNECT_TIMEOUT` is closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from livekit.agents import AgentSession
from livekit.agents.utils import shortuuid
from livekit.agents.voice.transcription import TranscriptSynchronizer

from ..call_info import CallInfo
from ..live_instructions import ChannelRequests
from ..models import Models
from ..session import build_agent, build_session
from ..settings import Settings
from .audio_io import PeerAudioInput, PeerAudioOutput
from .echo import EchoCanceller
from .events import AgentTranscriptOutput, encode, relay_session_events
from .jitter import set_peer_audio_prefetch
from .sdp import BadOffer

logger = logging.getLogger("voice_agent.embedded")

_MAX_QUEUED_MESSAGES = 256  # events produced before the page's data channel opens

__all__ = ["BadOffer", "PeerSession"]


class PeerSession:
    """`answer()` the offer; `on_connected(peer)` decides whether it may start (`start()`), `on_closed(peer)`
    is called once when it is gone."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        client: str,
        on_connected: Callable[[PeerSession], bool],
        on_closed: Callable[[PeerSession], None],
    ) -> None:
        self.id = shortuuid("peer_")
        self.client = client
        self._settings = settings
        self._models = models
        self._on_connected = on_connected
        self._on_closed = on_closed
        ice = [RTCIceServer(urls=url) for url in settings.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        self._echo = EchoCanceller() if settings.echo_cancellation else None
        self.output = PeerAudioOutput(self._echo)
        self.session: AgentSession | None = None
        self.started = False
        self._mic: MediaStreamTrack | None = None
        self._channel: RTCDataChannel | None = None
        self._queued: collections.deque[str] = collections.deque(maxlen=_MAX_QUEUED_MESSAGES)
        self._closing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._starting: asyncio.Task[None] | None = None
        self._requests = ChannelRequests(settings, self.send)
        self._sync: TranscriptSynchronizer | None = None

    @property
    def ice_connected(self) -> bool:
        """ICE has found a path: the caller is completing DTLS and about to connect."""
        return self.pc.iceConnectionState in ("connected", "completed")

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer an offer that passed `sdp.check_offer`. BadOffer: aiortc cannot use it (the message is safe
        to show the client; the detail is logged)."""
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._attach_channel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        try:
            await self.pc.setRemoteDescription(offer)
        except Exception as e:  # aiortc raises ValueError, KeyError, OperationError, ... on SDP it cannot use
            logger.debug("session %s: aiortc refused the offer: %r", self.id, e)
            raise BadOffer("invalid SDP offer: the WebRTC stack cannot use it") from e
        if self._mic is None:
            raise BadOffer("the offer has no audio track")
        set_peer_audio_prefetch(self.pc, self._settings.receive_jitter_packets)
        self.pc.addTrack(self.output.track)
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as e:
            logger.warning("session %s: cannot answer the offer: %r", self.id, e)
            raise BadOffer("the offer cannot be answered (no common audio codec?)") from e
        # a client that never completes ICE/DTLS (closed tab, blocked UDP) must not linger
        self._timer = asyncio.get_running_loop().call_later(
            self._settings.connect_timeout, self._close_if_not_connected
        )
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

    async def _start(self) -> None:
        assert self._mic is not None
        try:
            self.session = session = build_session(
                self._settings, self._models, CallInfo(session_id=self.id, transport="embedded")
            )
            session.input.audio = PeerAudioInput(self._mic, self._echo)
            transcript = AgentTranscriptOutput(self.send)
            # the agent's words reach the page as they are played, not as fast as they are generated
            self._sync = sync = TranscriptSynchronizer(
                next_in_chain_audio=self.output, next_in_chain_text=transcript
            )
            session.output.audio = sync.audio_output
            session.output.transcription = sync.text_output
            relay_session_events(session, self.send, transcript)
            session.on("close", lambda _: self.close())
            await session.start(build_agent(self._settings))
        except Exception:
            logger.exception("session %s: could not start the agent", self.id)
            self.send({"type": "error", "message": "could not start a session"})
            self.close()
            return
        logger.info("session %s started", self.id)

    async def _close(self) -> None:
        try:
            if self._timer is not None:
                self._timer.cancel()
            if self._starting is not None and not self._starting.done():
                await asyncio.wait([self._starting])
            if self.session is not None:
                try:
                    await self.session.aclose()
                    if self._sync is not None:
                        await self._sync.aclose()
                except Exception:
                    logger.exception("session %s did not close cleanly", self.id)
            try:
                await self.pc.close()
            except Exception:  # aiortc can fail to close a connection it half set up
                logger.exception("session %s: the peer connection did not close cleanly", self.id)
            logger.info("session %s closed", self.id)
        finally:
            self._on_closed(self)  # the slot is given back whatever happened above

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._mic is None:
            self._mic = track

    def _attach_channel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", lambda data: self._requests.receive(data, self.session))

        def flush() -> None:
            while self._queued:
                channel.send(self._queued.popleft())

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)

    def _close_if_not_connected(self) -> None:
        if not self.started and self._closing is None:
            logger.info(
                "session %s: peer did not connect within %.1f s", self.id, self._settings.connect_timeout
            )
            self.close()

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self.close()
        elif state == "connected" and not self.started and self._closing is None:
            if self._on_connected(self):
                self.started = True
                if self._timer is not None:
                    self._timer.cancel()
                self._starting = asyncio.create_task(self._start())
            else:
                logger.info("session %s: connected, but every session slot is taken", self.id)
                self.send({"type": "error", "message": "the agent is at capacity, try again shortly"})
                self.close()
