"""Embedded mode: the agent behind its own WebRTC endpoint (aiortc) and web page, no LiveKit server."""

from .app import create_app

__all__ = ["create_app"]
