"""Splitting a streamed reply into synthesis units: an early first clause, then whole sentences."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from livekit.agents import tokenize

_CLAUSE_END = re.compile(r"[,;:](?=\s)")


def default_sentence_tokenizer() -> tokenize.SentenceTokenizer:
    # livekit's defaults (20 / 10 characters) hold short sentences back; see plugin README
    return tokenize.blingfire.SentenceTokenizer(min_sentence_len=8, stream_context_len=2)


class ReplyChunker:
    """Whole sentences from livekit's sentence tokenizer, except that the reply's first unit may end early.

    While no unit has been emitted, text is held here. The first unit is cut at the first comma, semicolon or
    colon (followed by a space) that has at least `first_clause_min_words` words before it, so speech starts
    before the first sentence is complete; if a sentence completes first, or input is flushed, everything held
    goes to the sentence tokenizer as usual. `first_clause_min_words=0` disables the early cut.
    """

    def __init__(self, sentence_tokenizer: tokenize.SentenceTokenizer, first_clause_min_words: int) -> None:
        self._tokenizer = sentence_tokenizer
        self._sentences = sentence_tokenizer.stream()
        self._min_words = first_clause_min_words
        self._first: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._held: str | None = ""
        if first_clause_min_words <= 0:
            self._release(None)

    def push_text(self, text: str) -> None:
        if self._held is None:
            self._sentences.push_text(text)
            return
        self._held += text
        sentences = self._tokenizer.tokenize(self._held)
        cut = self._clause_cut(self._held)
        # a clause counts only inside the first sentence (text may arrive several sentences at once)
        if cut is not None and (
            len(sentences) == 1 or len(self._held[:cut].split()) < len(sentences[0].split())
        ):
            rest = self._held[cut:]
            self._release(self._held[:cut].strip())
            self._sentences.push_text(rest.lstrip())
        elif len(sentences) > 1:
            self._release_held()  # a sentence is complete: the sentence stream emits it right away

    def flush(self) -> None:
        self._release_held()
        self._sentences.flush()

    def end_input(self) -> None:
        self._release_held()
        self._sentences.end_input()

    async def aclose(self) -> None:
        self._release(None)
        await self._sentences.aclose()

    async def __aiter__(self) -> AsyncIterator[str]:
        if first := await self._first:
            yield first
        async for sentence in self._sentences:
            yield sentence.token

    def _clause_cut(self, text: str) -> int | None:
        for match in _CLAUSE_END.finditer(text):
            if len(text[: match.end()].split()) >= self._min_words:
                return match.end()
        return None

    def _release_held(self) -> None:
        if self._held is not None:
            held = self._held
            self._release(None)
            self._sentences.push_text(held)

    def _release(self, first: str | None) -> None:
        self._held = None
        if not self._first.done():
            self._first.set_result(first)
