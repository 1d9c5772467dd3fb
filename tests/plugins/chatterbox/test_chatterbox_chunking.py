"""Reply chunking: an early first clause, then livekit's sentences."""

from __future__ import annotations

import asyncio

from livekit.plugins.chatterbox.chunking import ReplyChunker, default_sentence_tokenizer


async def chunk(
    text: str, *, word_by_word: bool = True, min_words: int = 4, flush_at: int | None = None
) -> list[str]:
    chunker = ReplyChunker(default_sentence_tokenizer(), min_words)
    units: list[str] = []

    async def consume() -> None:
        async for unit in chunker:
            units.append(unit)

    consumer = asyncio.create_task(consume())
    pieces = [word + " " for word in text.split(" ")] if word_by_word else [text]
    for i, piece in enumerate(pieces):
        if i == flush_at:
            chunker.flush()
        chunker.push_text(piece)
        await asyncio.sleep(0)
    chunker.end_input()
    await consumer
    await chunker.aclose()
    return units


REPLY = "Well, I think that the answer, in short, is yes. Thanks for asking."


async def test_first_unit_ends_at_a_clause_after_enough_words() -> None:
    # "Well," has too few words; the next comma has five before it
    assert await chunk(REPLY) == ["Well, I think that the answer,", "in short, is yes.", "Thanks for asking."]


async def test_whole_text_at_once_is_cut_the_same_way() -> None:
    assert await chunk(REPLY, word_by_word=False) == [
        "Well, I think that the answer,",
        "in short, is yes.",
        "Thanks for asking.",
    ]


async def test_a_sentence_that_completes_first_wins() -> None:
    units = await chunk("Hi there, you. How are you, my good friend? Fine.")
    assert units == ["Hi there, you.", "How are you, my good friend?", "Fine."]
    units = await chunk("Hello there. How are you, my good friend? Fine.", word_by_word=False)
    assert units == ["Hello there.", "How are you, my good friend?", "Fine."]


async def test_numbers_are_not_clause_ends() -> None:
    assert await chunk("It costs 3,000 dollars, more or less, today.") == [
        "It costs 3,000 dollars,",
        "more or less, today.",
    ]


async def test_disabled_early_cut_gives_sentences() -> None:
    assert await chunk(REPLY, min_words=0) == [
        "Well, I think that the answer, in short, is yes.",
        "Thanks for asking.",
    ]


async def test_flush_releases_held_text() -> None:
    assert await chunk("Okay then so we go ahead", flush_at=3) == ["Okay then so", "we go ahead"]
