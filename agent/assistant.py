"""The agent the caller talks to."""

from __future__ import annotations

from livekit.agents import Agent


class Assistant(Agent):
    def __init__(self, instructions: str) -> None:
        super().__init__(instructions=instructions)
