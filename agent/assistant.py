"""The agent the caller talks to."""

from __future__ import annotations

from collections.abc import AsyncIterable

from livekit.agents import Agent, ModelSettings, llm


class Assistant(Agent):
    """`max_history_items`: the LLM sees the instructions and this many recent chat items, and the agent
    keeps no more, so an hour-long call has the memory and the LLM latency of its first minutes."""

    def __init__(
        self, instructions: str, tools: list[llm.Tool | llm.Toolset] | None = None, *, max_history_items: int
    ) -> None:
        super().__init__(instructions=instructions, tools=tools or [])
        self._max_history_items = max_history_items

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str]:
        # every generation passes here (spoken turns, typed input, the turn after a tool call)
        limit = self._max_history_items
        if len(self.chat_ctx.items) > limit:
            await self.update_chat_ctx(self.chat_ctx.copy().truncate(max_items=limit))
        async for chunk in Agent.default.llm_node(
            self, chat_ctx.copy().truncate(max_items=limit), tools, model_settings
        ):
            yield chunk
