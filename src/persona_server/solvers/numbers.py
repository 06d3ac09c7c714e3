"""Numbers as people say and read them: English number words to values, values to speakable digits.

Shared by the math and units solvers. Values are exact `Fraction`s; only results that cannot be exact (roots,
conversions between inexactly related units) are floats, and those are said as "about ...".
"""

from __future__ import annotations

import re
from fractions import Fraction

_ONES = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_DIGIT_WORDS = {**_ONES}

NUMBER_WORDS = frozenset({*_ONES, *_TENS, *_SCALES, "dozen", "half", "point"})
DIGITS = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+")


def parse_digits(text: str) -> Fraction:
    """ "1,250.5" -> Fraction(2501, 2)."""
    return Fraction(text.replace(",", ""))


def words_value(words: list[str]) -> Fraction | None:
    """The value of a run of English number words ("a hundred and twelve", "two point five"), or None.

    `words` must already be only number words, "a"/"an" and "and"; the caller decides where a run ends.
    """
    if not words:
        return None
    if words[0] in ("a", "an"):
        words = ["one", *words[1:]]
    if words == ["half"] or words == ["one", "half"]:
        return Fraction(1, 2)
    if "point" in words:
        at = words.index("point")
        whole = words_value(words[:at]) if at else Fraction(0)
        decimals = words[at + 1:]
        if whole is None or not decimals or any(w not in _DIGIT_WORDS or _DIGIT_WORDS[w] > 9 for w in decimals):
            return None
        return whole + Fraction("0." + "".join(str(_DIGIT_WORDS[w]) for w in decimals))
    total, current, seen = 0, 0, False
    previous = ""
    for word in words:
        if word == "and":
            if not seen:
                return None
            continue
        if word in _ONES:
            if previous in _ONES or (previous in _TENS and _ONES[word] >= 10):
                return None  # "two three" is two numbers, not one
            current += _ONES[word]
        elif word in _TENS:
            if previous in _ONES or previous in _TENS:
                return None
            current += _TENS[word]
        elif word == "dozen":
            current = (current or 1) * 12
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0
        else:
            return None
        seen, previous = True, word
    return Fraction(total + current) if seen else None


def _plain(value: Fraction) -> str | None:
    """Exact decimal digits of a value whose decimal expansion ends within 10 places, else None."""
    if value.denominator == 1:
        return str(value.numerator)
    scaled = value * 10**10
    if scaled.denominator != 1:
        return None
    sign = "-" if value < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(11, "0")
    whole, frac = digits[:-10], digits[-10:].rstrip("0")
    return f"{sign}{whole}.{frac}"


MAX_SPOKEN_DIGITS = 21


def say_number(value: Fraction | float, *, places: int = 4) -> tuple[str, bool]:
    """A value as digits a voice can read, and whether that is exact ("12.5", True; "0.3333", False)."""
    if isinstance(value, Fraction):
        exact = _plain(value)
        if exact is not None and len(exact.lstrip("-").split(".")[0]) <= MAX_SPOKEN_DIGITS:
            return exact, True
        if exact is not None or abs(value) >= 10**MAX_SPOKEN_DIGITS:
            mantissa, exponent = f"{float(value):.4e}".split("e")
            # 10 to the power of 50 is exactly "1 times 10 to the power of 50"; 2 to the 100 is only about that.
            return _scientific(value), Fraction(mantissa) * Fraction(10) ** int(exponent) == value
        value = float(value)
    if value == int(value) and abs(value) < 10**MAX_SPOKEN_DIGITS:
        return str(int(value)), False
    if abs(value) >= 10**MAX_SPOKEN_DIGITS:
        return _scientific(value), False
    if abs(value) >= 1:
        text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    else:
        # Small values keep a few significant digits rather than rounding to 0.
        text = f"{value:.{places}g}"
        if "e" in text:
            return _scientific(value), False
    return text, False


def _scientific(value: Fraction | float) -> str:
    mantissa, exponent = f"{float(value):.4e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa} times 10 to the power of {int(exponent)}"
