"""English text as it should be spoken: LLM markdown, emoji, numbers, money, units, abbreviations, URLs.

Chatterbox reads what it is given: "**Dr.** Smith paid $3.50 at https://shop.example.com 🙂" would come out
with symbols spelled, digits guessed and the URL read letter by letter. normalize_for_speech rewrites such text
into words (numbers through num2words); it is applied to each synthesis unit, not to the transcript.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import emoji
from num2words import num2words

# --- markdown -----------------------------------------------------------------------------------------------
_CODE_FENCE = re.compile(r"```[^\n`]*")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LINE_MARKUP = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+)", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")  # not in snake_case
_STRAY_MARKUP = re.compile(r"[`*|]|(?<!\w)_+|_+(?!\w)")

# --- URLs and e-mail ----------------------------------------------------------------------------------------
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")

# --- abbreviations (case-sensitive, with their period) --------------------------------------------------------
_TITLES = {"Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor"}
_TITLE = re.compile(r"\b(Dr|Mr|Mrs|Ms|Prof)\.(?=\s+[A-Z])")
_ABBREVIATIONS = [
    (re.compile(r"\be\.g\.(?=\W|$)", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.(?=\W|$)", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\.(?=\s+[a-z])"), "et cetera"),
    (re.compile(r"\betc\."), "et cetera."),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
    (re.compile(r"\bapprox\.(?=\s)"), "approximately"),
    (re.compile(r"\b(?:Jr)\.(?=\W|$)"), "Junior"),
    (re.compile(r"\bNo\.(?=\s*\d)"), "number"),
    (re.compile(r"\s&\s"), " and "),
]

# --- numbers ------------------------------------------------------------------------------------------------
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s+(thousand|million|billion|trillion))?"
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}  # fmt: skip
_MONEY = re.compile(rf"([$€£])\s?({_NUMBER}){_SCALE}\b")
_PERCENT = re.compile(rf"({_NUMBER})\s?%")
_UNITS = {
    "km/h": "kilometers per hour", "mph": "miles per hour", "km": "kilometers", "cm": "centimeters",
    "mm": "millimeters", "kg": "kilograms", "mg": "milligrams", "g": "grams", "lbs": "pounds", "lb": "pounds",
    "ft": "feet", "ms": "milliseconds", "min": "minutes", "h": "hours", "s": "seconds", "kHz": "kilohertz",
    "Hz": "hertz", "GHz": "gigahertz", "KB": "kilobytes", "MB": "megabytes", "GB": "gigabytes",
    "TB": "terabytes", "°C": "degrees Celsius", "°F": "degrees Fahrenheit", "°": "degrees",
}  # fmt: skip
_UNIT = re.compile(
    rf"({_NUMBER})\s?({'|'.join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))})(?![\w°])"
)
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_NEGATIVE = re.compile(rf"(?<![\w.])-({_NUMBER})\b")
_PLAIN_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})(?![\w])")
_YEAR = re.compile(r"^(?:1[1-9]|20)\d\d$")


def _n2w(number: int, **kwargs: str) -> str:
    # num2words writes "one thousand, two hundred": the comma would be read as a pause
    return str(num2words(number, **kwargs)).replace(",", "")


def normalize_for_speech(text: str) -> str:
    """`text` with markup and emoji removed and numbers, symbols, abbreviations and URLs in words."""
    text = _strip_markdown(text)
    text = emoji.replace_emoji(text, replace="")
    text = _URL.sub(lambda m: _speak_url(m.group(0)), text)
    text = _EMAIL.sub(lambda m: f"{_speak_host(m.group(1))} at {_speak_host(m.group(2))}", text)
    text = _TITLE.sub(lambda m: _TITLES[m.group(1) + "."], text)
    for pattern, words in _ABBREVIATIONS:
        text = pattern.sub(words, text)
    for pattern, speak in _NUMBER_RULES:
        text = pattern.sub(speak, text)
    text = re.sub(r"(?<=\w)[ \t]*\n\s*(?=\S)", ". ", text.strip())  # a heading or list item ends a sentence
    return re.sub(r"\s+", " ", text).strip()


def _strip_markdown(text: str) -> str:
    text = _CODE_FENCE.sub("", text)
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _RULE.sub("", text)
    text = _LINE_MARKUP.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\2", text)
    return _STRAY_MARKUP.sub(" ", text)


def _speak_url(url: str) -> str:
    """The host only, dots spoken: paths and queries are noise when heard. Keeps sentence punctuation."""
    stripped = url.rstrip(".,;:!?")
    host = re.sub(r"^(?:https?://)?(?:www\.)?", "", stripped, flags=re.IGNORECASE)
    return _speak_host(re.split(r"[/?#]", host)[0]) + url[len(stripped) :]


def _speak_host(host: str) -> str:
    return " dot ".join(part for part in host.split(".") if part)


def _value(number: str) -> float | int:
    number = number.replace(",", "")
    return float(number) if "." in number else int(number)


def _words(number: str) -> str:
    """Cardinal; decimals digit by digit after "point" (3.14 -> three point one four)."""
    number = number.replace(",", "")
    whole, _, fraction = number.partition(".")
    words = _n2w(int(whole))
    if fraction:
        words += " point " + " ".join(_n2w(int(digit)) for digit in fraction)
    return words


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCIES[match.group(1)]
    number, scale = match.group(2), match.group(3)
    if scale:  # $1.5 million -> one point five million dollars
        return f"{_words(number)} {scale} {many}"
    whole, _, fraction = number.replace(",", "").partition(".")
    amount = int(whole)
    spoken = f"{_n2w(amount)} {one if amount == 1 else many}"
    if fraction and int(fraction[:2].ljust(2, "0")):
        hundredths = int(fraction[:2].ljust(2, "0"))
        small = f"{_n2w(hundredths)} {cent if hundredths == 1 else cents}"
        spoken = small if amount == 0 else f"{spoken} and {small}"
    return spoken


def _unit(match: re.Match[str]) -> str:
    number, unit = match.group(1), match.group(2)
    name = _UNITS[unit]
    if _value(number) == 1 and name.endswith("s") and " " not in name:
        name = {"feet": "foot"}.get(name, name[:-1])
    return f"{_words(number)} {name}"


def _time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute == 0:
        return f"{_n2w(hour)} o'clock"
    return f"{_n2w(hour)} {'oh ' if minute < 10 else ''}{_n2w(minute)}"


def _plain(match: re.Match[str]) -> str:
    number = match.group(1)
    if _YEAR.match(number):
        return _n2w(int(number), to="year")
    return _words(number)


_NUMBER_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (_MONEY, _money),
    (_PERCENT, lambda m: f"{_words(m.group(1))} percent"),
    (_TIME, _time),
    (_UNIT, _unit),
    (_ORDINAL, lambda m: _n2w(int(m.group(1)), to="ordinal")),
    (_NEGATIVE, lambda m: f"minus {_words(m.group(1))}"),
    (_PLAIN_NUMBER, _plain),
]
