"""The agent the caller talks to."""

from __future__ import annotations

from livekit.agents import Agent, llm


class Assistant(Agent):
    def __init__(self, instructions: str, tools: list[llm.Tool | llm.Toolset] | None = None) -> None:
        super().__init__(instructions=instructions, tools=tools or [])
