"""Who holds what in embedded mode: connected peers hold the `VOICE_AGENT_MAX_SESSIONS` slots; answered peers
still connecting (pending) hold none.

* An offer is refused (503) when every slot is held by a connected peer or one whose ICE already connected
  (it is finishing DTLS and will take a slot in a moment).
* At most `VOICE_AGENT_MAX_PENDING_OFFERS` peers are pending; a new offer beyond that evicts the oldest one, so
  offers that never connect cannot keep a caller who does connect out, and each is closed after
  `VOICE_AGENT_CONNECT_TIMEOUT` anyway.
* One client (address) holds at most `VOICE_AGENT_MAX_SESSIONS_PER_CLIENT` peers, pending or connected (429).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from ..settings import Settings
from .peer import PeerSession

logger = logging.getLogger("voice_agent.embedded")


class AtCapacity(Exception):
    pass


class ClientLimit(Exception):
    pass


class Sessions:
    def __init__(self, settings: Settings) -> None:
        self._max_sessions = settings.max_sessions
        self._max_pending = settings.max_pending_offers
        self._per_client = settings.max_sessions_per_client
        self._pending: OrderedDict[PeerSession, None] = OrderedDict()  # oldest first
        self._active: set[PeerSession] = set()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def check_admission(self, client: str) -> None:
        """AtCapacity / ClientLimit unless a new offer from `client` may be answered."""
        held = sum(p.client == client for p in (*self._pending, *self._active))
        if held >= self._per_client:
            raise ClientLimit
        committed = len(self._active) + sum(p.ice_connected for p in self._pending)
        if committed >= self._max_sessions:
            raise AtCapacity

    def add(self, peer: PeerSession) -> None:
        """Track a peer about to be answered; evicts the oldest pending peer when too many are pending."""
        self._pending[peer] = None
        while len(self._pending) > self._max_pending:
            oldest = next((p for p in self._pending if not p.ice_connected), next(iter(self._pending)))
            del self._pending[oldest]
            logger.info("session %s: dropped, too many offers waiting to connect", oldest.id)
            oldest.close()

    def claim(self, peer: PeerSession) -> bool:
        """A pending peer connected: True when it may start its session (it holds a slot from now on)."""
        if peer not in self._pending or len(self._active) >= self._max_sessions:
            return False
        del self._pending[peer]
        self._active.add(peer)
        return True

    def discard(self, peer: PeerSession) -> None:
        self._pending.pop(peer, None)
        self._active.discard(peer)

    async def close_all(self) -> None:
        await asyncio.gather(*(peer.close() for peer in [*self._pending, *self._active]))
