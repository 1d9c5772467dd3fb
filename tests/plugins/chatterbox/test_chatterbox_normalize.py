"""Text for speech: what the LLM writes vs what Chatterbox should be given."""

from __future__ import annotations

import pytest
from livekit.plugins.chatterbox import normalize_for_speech


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Dr. Smith and Mr. Jones met Prof. Lee.", "Doctor Smith and Mister Jones met Professor Lee."),
        ("Pi is roughly 3.14.", "Pi is roughly three point one four."),
        ("We sold 1,234 units.", "We sold one thousand two hundred and thirty-four units."),
        ("It was built in 1999.", "It was built in nineteen ninety-nine."),
        ("It is -5 outside.", "It is minus five outside."),
        ("That costs $3.50.", "That costs three dollars and fifty cents."),
        ("Only $1 or €0.99!", "Only one dollar or ninety-nine cents!"),
        ("A $1.5 million deal.", "A one point five million dollars deal."),
        ("About 50% of £20.", "About fifty percent of twenty pounds."),
        ("Drive 10 km at 25°C.", "Drive ten kilometers at twenty-five degrees Celsius."),
        ("It weighs 1 kg and takes 200 ms.", "It weighs one kilogram and takes two hundred milliseconds."),
        ("The 21st meeting is at 3:05.", "The twenty-first meeting is at three oh five."),
        ("Call at 10:00, e.g. today.", "Call at ten o'clock, for example today."),
        ("Apples, pears, etc. are fruit.", "Apples, pears, et cetera are fruit."),
        ("See https://docs.example.com/guide?page=2.", "See docs dot example dot com."),
        (
            "Visit www.example.org or mail me@example.org.",
            "Visit example dot org or mail me at example dot org.",
        ),
        ("This is **very** important and *quite* _nice_.", "This is very important and quite nice."),
        ("Run `pip install` then read [the docs](https://x.io).", "Run pip install then read the docs."),
        ("## Steps\n- First, wait\n- Then go", "Steps. First, wait. Then go"),
        ("Great job! 🎉👍", "Great job!"),
        ("Keep my_variable_name as is.", "Keep my_variable_name as is."),
        ("Plain words stay the same.", "Plain words stay the same."),
    ],
)
def test_normalize_for_speech(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_markup_only_is_nothing_to_say() -> None:
    assert normalize_for_speech("🙂 **") == ""
