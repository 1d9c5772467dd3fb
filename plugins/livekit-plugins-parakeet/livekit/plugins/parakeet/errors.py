"""The engine's errors, and the one-line form of an exception its messages use."""

from __future__ import annotations

from livekit.agents import APIError


class EngineClosedError(RuntimeError):
    """The engine was closed, or its scheduler thread stopped: it accepts no more work."""


class EngineError(APIError):
    """The engine failed this stream's or request's work, not because of its audio: a scheduler fault, or out of
    device memory even alone in a step. Retryable: the engine goes on serving, so a new stream (what
    livekit-agents does for a retryable error) or a new request can succeed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


def one_line(e: BaseException, limit: int = 200) -> str:
    """The first line of `e`'s message (its type when it has none), at most `limit` characters."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."
