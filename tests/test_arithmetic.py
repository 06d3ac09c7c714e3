"""The math solver's parser: exact answers, spoken restatements, and quick refusals outside its bounds."""

from __future__ import annotations

import time

import pytest

from persona_server.query import Query
from persona_server.solvers.arithmetic import DIVISION_BY_ZERO, MathOptions, MathSolver, calculate


@pytest.mark.parametrize(("question", "answer"), [
    ("what is 2+2", "2 plus 2 is 4."),
    ("What is 2 + 2?", "2 plus 2 is 4."),
    ("two plus two", "2 plus 2 is 4."),
    ("what is twelve times seven", "12 times 7 is 84."),
    ("a hundred divided by eight", "100 divided by 8 is 12.5."),
    ("what is one hundred and twenty three plus seven", "123 plus 7 is 130."),
    ("what is 15% of 80", "15% of 80 is 12."),
    ("what is 5 percent of 200", "5% of 200 is 10."),
    ("what percent of 80 is 12", "12 is 15% of 80."),
    ("12 is what percentage of 80", "12 is 15% of 80."),
    ("2 to the power of 10", "2 to the power of 10 is 1024."),
    ("what is 2^-1", "2 to the power of minus 1 is 0.5."),
    ("what is 4 to the power of 0.5", "4 to the power of 0.5 is 2."),
    ("what is 8 ^ (1/3)", "8 to the power of (1 divided by 3) is 2."),
    ("square root of 144", "The square root of 144 is 12."),
    ("what is the square root of 2", "The square root of 2 is about 1.4142."),
    ("what is the cube root of 27", "The cube root of 27 is 3."),
    ("what is (3 + 4) * 2", "(3 plus 4) times 2 is 14."),
    ("what is 1/4 plus 0.5", "1 divided by 4 plus 0.5 is 0.75."),
    ("what is 10 divided by 3", "10 divided by 3 is about 3.3333."),
    ("what is 0.1 + 0.2", "0.1 plus 0.2 is 0.3."),  # exact: no binary floating point
    ("calculate 1,000 * 1,000", "1000 times 1000 is 1000000."),
    ("what does 7 x 8 equal", "7 times 8 is 56."),
    ("how much is 3 squared", "3 squared is 9."),
    ("what is 5 factorial", "5 factorial is 120."),
    ("what is 10 mod 3", "10 modulo 3 is 1."),
    ("what is half of 10", "Half of 10 is 5."),
    ("what is two thirds of 9", "2 thirds of 9 is 6."),
    ("what is a third of 12", "A third of 12 is 4."),
    ("what is 2 to the 10th power", "2 to the power of 10 is 1024."),
    ("what is the sum of 2 and 3", "2 plus 3 is 5."),
    ("what is the product of 4 and 5", "4 times 5 is 20."),
    ("hi there, what is 2 plus 2", "2 plus 2 is 4."),
    ("what's two and two", "2 plus 2 is 4."),
    ("what is one hundred and five plus one", "105 plus 1 is 106."),
    ("is 2 + 2 equal to 4", "Yes, 2 plus 2 is 4."),
    ("is 2 + 2 equal to 5?", "No, 2 plus 2 is 4, not 5."),
    ("what is minus 5 plus 3", "Minus 5 plus 3 is -2."),
    ("8 \u00f7 2", "8 divided by 2 is 4."),
    ("what is 2 ** 100", "2 to the power of 100 is about 1.2677 times 10 to the power of 30."),
])
def test_answers(question: str, answer: str) -> None:
    assert calculate(question) == answer


@pytest.mark.parametrize("question", [
    "what is 5 divided by 0", "what is 7 mod 0", "what percent of 0 is 3", "what is 0 to the power of -1",
])
def test_division_by_zero_is_said_not_raised(question: str) -> None:
    assert calculate(question) == DIVISION_BY_ZERO


@pytest.mark.parametrize("question", [
    "what is a prime number", "what is love", "what is the capital of France", "what time is it",
    "what is 5", "what is twelve", "what is 2 plus", "hello", "what is x", "what is (1 + 2", "two three",
    "how many feet in a mile",
])
def test_questions_that_are_not_arithmetic_get_no_answer(question: str) -> None:
    assert calculate(question) is None


@pytest.mark.parametrize("question", [
    "what is 2 to the power of 1000000",
    "what is 9 ^ 9 ^ 9 ^ 9",
    "what is 2^2^2^2^2^2",
    "what is 10 ** 10 ** 10",
    "what is 9999999 factorial",
    "what is 1000 factorial",
    "what is 2.5 factorial",
    "what is " + "(" * 50 + "1" + ")" * 50 + " + 1",
    "what is " + " + ".join(["1"] * 200),
    "what is 99999999999999999999 ^ 99999",
    "what is 2 ^ 0.5 ^ 1000000",
    "what is the square root of -4",
])
def test_refusals_are_quick(question: str) -> None:
    started = time.perf_counter()
    assert calculate(question) is None
    assert time.perf_counter() - started < 0.5


def test_huge_but_bounded_results_are_said_in_powers_of_ten() -> None:
    assert calculate("what is 10 to the power of 50") == (
        "10 to the power of 50 is 1 times 10 to the power of 50."
    )


async def test_the_solver_answers_english_questions_only() -> None:
    solver = MathSolver(MathOptions(), None)  # type: ignore[arg-type]
    assert await solver.answer(Query.from_text("what is 2+2")) == "2 plus 2 is 4."
    assert await solver.answer(Query.from_text("quanto é 2+2", lang="pt-PT")) is None
    assert await solver.answer(Query.from_text("tell me a joke")) is None
