"""Exact arithmetic with bounds: what the math solver computes with, so no question can hang or eat memory.

Values are `Fraction`s while they can be exact, floats once they cannot (irrational roots). Every step checks
the size of its result, and powers and factorials refuse before computing anything too large.
"""

from __future__ import annotations

import math
from fractions import Fraction

MAX_BITS = 1000  # ≈ 300 digits: the largest numerator or denominator any step may produce
MAX_FACTORIAL = 100
MAX_ROOT_DEGREE = 100


class Refused(Exception):
    """Outside the bounds, or not arithmetic: no answer."""


class DivisionByZero(Exception):
    pass


Value = Fraction | float


def check(value: Value) -> Value:
    if isinstance(value, Fraction):
        if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
            raise Refused("too large")
    elif not math.isfinite(value) or abs(value) > 2.0**MAX_BITS:
        raise Refused("too large")
    return value


def add(a: Value, b: Value) -> Value:
    return check(a + b)


def sub(a: Value, b: Value) -> Value:
    return check(a - b)


def mul(a: Value, b: Value) -> Value:
    return check(a * b)


def div(a: Value, b: Value) -> Value:
    if b == 0:
        raise DivisionByZero
    return check(a / b)


def mod(a: Value, b: Value) -> Value:
    if b == 0:
        raise DivisionByZero
    return check(a % b)


def neg(a: Value) -> Value:
    return -a


def factorial(a: Value) -> Value:
    if not (isinstance(a, Fraction) and a.denominator == 1 and 0 <= a <= MAX_FACTORIAL):
        raise Refused("factorial out of bounds")
    return Fraction(math.factorial(int(a)))


def power(base: Value, exponent: Value) -> Value:
    if isinstance(exponent, Fraction) and exponent.denominator == 1 and isinstance(base, Fraction):
        n = exponent.numerator
        if base == 0 and n < 0:
            raise DivisionByZero
        if abs(base) in (0, 1):
            return base**n
        # The result's size is known before computing it: refuse rather than build a huge integer.
        bits = max(base.numerator.bit_length(), base.denominator.bit_length())
        if abs(n) * max(bits - 1, 1) > MAX_BITS:
            raise Refused("exponent too large")
        return check(base**n)
    if isinstance(exponent, Fraction) and exponent.denominator <= MAX_ROOT_DEGREE and isinstance(base, Fraction):
        return power(root(base, exponent.denominator), Fraction(exponent.numerator))
    if abs(float(exponent)) > MAX_BITS or (float(base) < 0):
        raise Refused("power out of bounds")
    try:
        return check(float(base) ** float(exponent))
    except OverflowError:
        raise Refused("too large") from None


def root(value: Value, degree: int) -> Value:
    if value < 0:
        if degree % 2 == 0:
            raise Refused("no real root")
        return -root(-value, degree)  # type: ignore[operator]
    if isinstance(value, Fraction):
        num, den = int_root(value.numerator, degree), int_root(value.denominator, degree)
        if num is not None and den is not None:
            return Fraction(num, den)
    return check(float(value) ** (1 / degree))


def int_root(n: int, degree: int) -> int | None:
    guess = math.isqrt(n) if degree == 2 else round(n ** (1 / degree))
    for candidate in (guess - 1, guess, guess + 1):
        if candidate >= 0 and candidate**degree == n:
            return candidate
    return None
