"""`persona-solver-math`: arithmetic questions answered exactly, in digits and in words, with no `eval`.

"what is 2+2", "twelve times seven", "15% of 80", "what percent of 80 is 12", "2 to the power of 10",
"square root of 144", "(3 + 4) * 2", "1/4 plus 0.5". A small recursive-descent parser over `Fraction`s with
bounds on everything a question could blow up: its length, nesting depth, exponent sizes, factorials and the
size of every intermediate result. Anything outside the bounds, or not arithmetic at all ("what is a prime
number"), gets no answer, so the next solver tries. Dividing by zero gets a spoken answer, not an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from persona_server.query import Query
from persona_server.solvers.base import Solver, SolverOptions
from persona_server.solvers.bounded_math import (
    DivisionByZero,
    Refused,
    Value,
    add,
    check,
    div,
    factorial,
    mod,
    mul,
    neg,
    power,
    root,
    sub,
)
from persona_server.solvers.numbers import DIGITS, NUMBER_WORDS, parse_digits, say_number, words_value

MAX_QUESTION_CHARS = 200
MAX_TOKENS = 60
MAX_DEPTH = 8
DIVISION_BY_ZERO = "You can't divide by zero: that has no answer."

# -- tokens ---------------------------------------------------------------------------------------------------

# Multi-word operators first (longest match wins); each maps to one operator token.
_PHRASES: list[tuple[str, str]] = [
    ("to the power of", "^"), ("to the power", "^"), ("raised to the power of", "^"), ("raised to", "^"),
    ("to the", "^"), ("multiplied by", "*"), ("divided by", "/"), ("divided into", "\\"), ("times", "*"),
    ("plus", "+"), ("and", "&"), ("add", "+"), ("minus", "-"), ("less", "-"), ("negative", "neg"),
    ("over", "/"), ("x", "*"), ("mod", "%mod"), ("modulo", "%mod"), ("square root of", "sqrt"),
    ("square root", "sqrt"), ("the square root of", "sqrt"), ("sqrt of", "sqrt"), ("sqrt", "sqrt"),
    ("cube root of", "cbrt"), ("the cube root of", "cbrt"), ("squared", "sq"), ("cubed", "cube"),
    ("percent of", "%of"), ("percent", "%"), ("per cent", "%"), ("factorial", "!"), ("of", "of"),
]
_PHRASE_RE = re.compile(
    r"\s*(?:(?P<num>" + DIGITS.pattern + r")|(?P<sym>\*\*|[-+*/^()%!\u00d7\u00f7\u2212])|(?P<word>[a-z]+))"
)
_PHRASE_TABLE = sorted(((p.split(), tok) for p, tok in _PHRASES), key=lambda item: -len(item[0]))
_SYMBOLS = {"**": "^", "\u00d7": "*", "\u00f7": "/", "\u2212": "-"}  # times, divided by, minus signs


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", or an operator / parenthesis
    value: Fraction = Fraction(0)
    text: str = ""


# "two thirds", "a quarter", "3 fifths": a number followed by one of these is divided by it.
_DENOMINATORS = {
    **dict.fromkeys(("third", "thirds"), 3), **dict.fromkeys(("quarter", "quarters", "fourth", "fourths"), 4),
    **dict.fromkeys(("fifth", "fifths"), 5), **dict.fromkeys(("sixth", "sixths"), 6),
    **dict.fromkeys(("seventh", "sevenths"), 7), **dict.fromkeys(("eighth", "eighths"), 8),
    **dict.fromkeys(("ninth", "ninths"), 9), **dict.fromkeys(("tenth", "tenths"), 10),
}
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_SCALE_WORDS = frozenset({"hundred", "thousand", "million", "billion", "trillion"})


def _number_suffix(raw: list[tuple[str, str]], i: int, token: Token) -> tuple[Token, int]:
    """What may follow a number: a denominator ("two thirds"), an ordinal ending ("10th power")."""
    if i < len(raw) and raw[i][0] == "word" and raw[i][1] in _DENOMINATORS:
        value = token.value / _DENOMINATORS[raw[i][1]]
        return Token("num", value, f"{token.text} {raw[i][1]}"), i + 1
    if i < len(raw) and raw[i][0] == "word" and raw[i][1] in _ORDINAL_SUFFIXES:
        i += 1
        if i < len(raw) and raw[i] == ("word", "power"):  # "2 to the 10th power"
            i += 1
    return token, i


def tokenize(text: str) -> list[Token]:
    raw: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _PHRASE_RE.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise Refused(f"unexpected {text[pos]!r}")
        pos = match.end()
        if match.group("num"):
            raw.append(("num", match.group("num")))
        elif match.group("sym"):
            raw.append(("sym", match.group("sym")))
        else:
            raw.append(("word", match.group("word")))
        if len(raw) > MAX_TOKENS:
            raise Refused("too long")
    tokens: list[Token] = []
    i = 0
    while i < len(raw):
        kind, text_ = raw[i]
        if kind == "num":
            token, i = _number_suffix(raw, i + 1, Token("num", parse_digits(text_), text_.replace(",", "")))
            tokens.append(token)
            continue
        if kind == "sym":
            tokens.append(Token(_SYMBOLS.get(text_, text_)))
            i += 1
            continue
        # A run of number words is one number ("a hundred and twelve"); "and" inside it belongs to it.
        j = i
        while j < len(raw) and raw[j][0] == "word" and (
            raw[j][1] in NUMBER_WORDS or (raw[j][1] in ("a", "an") and j + 1 < len(raw) and (
                raw[j + 1][1] in ("hundred", "thousand", "million", "billion", "dozen", "half")
                or raw[j + 1][1] in _DENOMINATORS))
            # "one hundred and five" is one number, "two and two" is two
            or (raw[j][1] == "and" and j > i and raw[j - 1][1] in _SCALE_WORDS and j + 1 < len(raw)
                and raw[j + 1][1] in NUMBER_WORDS)
        ):
            j += 1
        if j > i:
            value = words_value([w for _, w in raw[i:j]])
            if value is None:
                raise Refused("not a number")
            spoken = "half" if value == Fraction(1, 2) and raw[j - 1][1] == "half" else say_number(value)[0]
            if raw[i][1] in ("a", "an") and j == i + 1:
                spoken = raw[i][1]  # "a third"
            token, i = _number_suffix(raw, j, Token("num", value, spoken))
            tokens.append(token)
            continue
        words = [w for _, w in raw[i:]]
        for phrase, tok in _PHRASE_TABLE:
            if words[: len(phrase)] == phrase:
                tokens.append(Token(tok))
                i += len(phrase)
                break
        else:
            raise Refused(f"not arithmetic: {text_!r}")
    return tokens


# -- parsing and evaluating at once ---------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    value: Value
    spoken: str  # the expression as a voice says it: "2 plus 2"
    operations: int = 0


class Parser:
    """expr := term (('+'|'-'|'and') term)* ; term := unary (('*'|'/'|'of'|mod) unary)* ;
    unary := ('-'|'+'|sqrt|cbrt) unary | power ; power := postfix ('^' unary)? ;
    postfix := atom ('%'|'sq'|'cube'|'!')* ; atom := number | '(' expr ')'."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str:
        return self.tokens[self.pos].kind if self.pos < len(self.tokens) else ""

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Result:
        if not self.tokens:
            raise Refused("empty")
        result = self.expr()
        if self.pos != len(self.tokens):
            raise Refused("trailing tokens")
        return result

    def expr(self) -> Result:
        left = self.term()
        while self.peek() in ("+", "-", "&"):
            op = self.take().kind
            right = self.term()
            if op == "-":
                left = _combine(left, right, "minus", sub)
            else:
                left = _combine(left, right, "plus", add)
        return left

    def term(self) -> Result:
        left = self.unary()
        while self.peek() in ("*", "/", "\\", "of", "%mod", "%of"):
            op = self.take().kind
            right = self.unary()
            if op == "*":
                left = _combine(left, right, "times", mul)
            elif op == "/":
                left = _combine(left, right, "divided by", div)
            elif op == "\\":
                left = _combine(right, left, "divided by", div)
            elif op == "%mod":
                left = _combine(left, right, "modulo", mod)
            elif op == "%of":  # "15 percent of 80"
                left = _combine(_percent(left), right, "of", mul)
                left.spoken = left.spoken.replace(" of ", "% of ", 1)
            else:
                left = _combine(left, right, "of", mul)
        return left

    def unary(self) -> Result:
        kind = self.peek()
        if kind in ("-", "neg"):
            self.take()
            inner = self.unary()
            return Result(neg(inner.value), f"minus {inner.spoken}", inner.operations)
        if kind == "+":
            self.take()
            return self.unary()
        if kind in ("sqrt", "cbrt"):
            self.take()
            inner = self.unary()
            degree = 2 if kind == "sqrt" else 3
            name = "square root" if degree == 2 else "cube root"
            return Result(root(inner.value, degree), f"the {name} of {inner.spoken}", inner.operations + 1)
        return self.power()

    def power(self) -> Result:
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            exponent = self.unary()  # right-associative: 2^3^2 is 2^9
            return _combine(base, exponent, "to the power of", power)
        return base

    def postfix(self) -> Result:
        result = self.atom()
        while self.peek() in ("%", "sq", "cube", "!"):
            op = self.take().kind
            if op == "%":
                result = Result(_percent(result).value, f"{result.spoken}%", result.operations + 1)
            elif op == "sq":
                result = Result(power(result.value, Fraction(2)), f"{result.spoken} squared", result.operations + 1)
            elif op == "cube":
                result = Result(power(result.value, Fraction(3)), f"{result.spoken} cubed", result.operations + 1)
            else:
                result = Result(factorial(result.value), f"{result.spoken} factorial", result.operations + 1)
        return result

    def atom(self) -> Result:
        kind = self.peek()
        if kind == "num":
            token = self.take()
            return Result(token.value, token.text)
        if kind == "(":
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise Refused("nested too deeply")
            inner = self.expr()
            if self.peek() != ")":
                raise Refused("unbalanced parentheses")
            self.take()
            self.depth -= 1
            return Result(inner.value, f"({inner.spoken})", inner.operations)
        raise Refused(f"expected a number, got {kind or 'the end'}")


def _combine(left: Result, right: Result, word: str, op: object) -> Result:
    value = op(left.value, right.value)  # type: ignore[operator]
    return Result(value, f"{left.spoken} {word} {right.spoken}", left.operations + right.operations + 1)


def _percent(result: Result) -> Result:
    return Result(check(result.value / 100), result.spoken, result.operations + 1)


# -- questions ------------------------------------------------------------------------------------------------

_LEAD = re.compile(
    r"^(?:(?:hi there|hey there|hey|hi|hello|ok|okay|so|please|quick question|can you|could you|would you|"
    r"tell me|do you know|"
    r"i want to know|i'd like to know)[,\s]+)*"
    r"(?:what\s+is|what's|whats|what\s+does|how\s+much\s+is|how\s+much\s+does|calculate|compute|work\s+out|"
    r"solve|evaluate|figure\s+out)?\s*"
)
# "is 2 + 2 equal to 4", "does 3 times 3 make 9"
_IS_IT = re.compile(r"^(?:is|does)\s+(?P<left>.+?)\s+(?:equal(?:s)?(?:\s+to)?|=|make|makes)\s+(?P<right>.+)$")
# "the sum of 2 and 3", "the product of 4 and 5", "the difference between 9 and 4".
_NAMED = re.compile(r"^(?:the\s+)?(sum|total|product|difference|quotient)\s+(?:of|between)\s+(.+?)\s+and\s+(.+)$")
_NAMED_OPS = {"sum": "plus", "total": "plus", "product": "times", "difference": "minus", "quotient": "divided by"}
_TRAIL = re.compile(r"(?:\s*(?:=|equals?|make|come\s+to|is|please|for\s+me|\?|!|\.))+\s*$")
_PERCENT_OF = re.compile(
    r"^(?:what\s+percent(?:age)?\s+of\s+(?P<whole>.+?)\s+is\s+(?P<part>.+?)|"
    r"(?P<part2>.+?)\s+is\s+what\s+percent(?:age)?\s+of\s+(?P<whole2>.+?))\s*\??$"
)


def normalize(question: str) -> str:
    text = question.strip().lower().replace("\u2019", "'")
    text = re.sub(r"\s+", " ", text)
    return text


def calculate(question: str) -> str | None:
    """The spoken answer to an arithmetic question, or None when it is not one (or is out of bounds)."""
    text = normalize(question)
    if len(text) > MAX_QUESTION_CHARS:
        return None
    try:
        match = _PERCENT_OF.match(text.rstrip("?!. "))
        if match:
            return _percent_of(match)
        match = _IS_IT.match(text.rstrip("?!. "))
        if match:
            return _is_it(match)
        body = _TRAIL.sub("", _LEAD.sub("", text, count=1)).strip()
        body = re.sub(r"^(?:the\s+)?(?:answer|result|value)\s+(?:to|of)\s+", "", body)
        body = _NAMED.sub(lambda m: f"{m.group(2)} {_NAMED_OPS[m.group(1)]} {m.group(3)}", body)
        result = Parser(tokenize(body)).parse()
    except Refused:
        return None
    except DivisionByZero:
        return DIVISION_BY_ZERO
    if result.operations == 0:
        return None  # "what is 5" or "what is twelve" is not a calculation
    words, exact = say_number(result.value)
    spoken = result.spoken[:1].upper() + result.spoken[1:]
    return f"{spoken} is {words if exact else 'about ' + words}."


def _is_it(match: re.Match[str]) -> str | None:
    left = Parser(tokenize(match.group("left"))).parse()
    right = Parser(tokenize(match.group("right"))).parse()
    if left.operations == 0:
        return None
    words, exact = say_number(left.value)
    said = f"{left.spoken} is {words if exact else 'about ' + words}"
    if left.value == right.value:
        return f"Yes, {said}."
    return f"No, {said}, not {right.spoken}."


def _percent_of(match: re.Match[str]) -> str | None:
    whole_text = match.group("whole") or match.group("whole2")
    part_text = match.group("part") or match.group("part2")
    whole = Parser(tokenize(whole_text)).parse()
    part = Parser(tokenize(part_text)).parse()
    if whole.value == 0:
        raise DivisionByZero
    words, exact = say_number(check(part.value * 100 / whole.value))
    amount = words if exact else f"about {words}"
    return f"{part.spoken[:1].upper() + part.spoken[1:]} is {amount}% of {whole.spoken}."


# -- the solver -----------------------------------------------------------------------------------------------


class MathOptions(SolverOptions):
    pass


class MathSolver(Solver):
    name = "persona-solver-math"
    instant = True  # answers without awaiting anything
    aliases = ("math",)
    description = "Exact arithmetic: +, -, times, divided by, percentages, powers, roots. Argument: the expression."
    speculative = True
    default_timeout = 1.0
    Options = MathOptions

    async def answer(self, query: Query) -> str | None:
        # The answer is an English sentence ("2 plus 2 is 4."): other languages are left to other solvers.
        question = query.question
        if query.lang_code != "en":
            return None
        # Most questions of the default persona hold no number at all: skip the tokenizer for them.
        if not _MAY_BE_MATH.search(question):
            return None
        return calculate(question)


_MAY_BE_MATH = re.compile(
    r"\d|\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|forty|"
    r"fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|trillion|dozen|half)\b",
    re.IGNORECASE,
)
