"""Median answer time of the math, units and clock solvers (issue 16), against the failure solver, in one run.

In-process (no HTTP): one persona per solver, each holding that solver alone, answers each of its questions
`--runs` times through `Persona.answer` (the chain included); the failure-only persona answering the same
questions is the baseline, so the ratio is what the solver itself costs on top of the chain. A second row per
solver times a question it does not answer ("tell me a joke"): what it costs every other question of the default
persona, where it runs speculatively.

    python bench/everyday.py [--runs 300] [--json bench/results/everyday.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import httpx

from persona_server.persona import Persona, parse_persona
from persona_server.query import Query

QUESTIONS = {
    "persona-solver-math": ["what is 2+2", "what is twelve times seven", "what is 15% of 80",
                            "what is the square root of 144", "what is (3 + 4) * 2"],
    "persona-solver-units": ["how many feet in a mile", "convert 30 celsius to fahrenheit", "100 km in miles",
                             "how many grams in a pound", "how tall is 180 cm"],
    "persona-solver-clock": ["what time is it", "what time is it in Tokyo", "what day is it today",
                             "how many days until christmas", "what day is christmas"],
}
MISS = "tell me a joke"
BASELINE = "ovos-solver-failure-plugin"


async def median_us(persona: Persona, questions: list[str], runs: int, expect_answer: bool) -> float:
    times = []
    for _ in range(runs):
        for question in questions:
            started = time.perf_counter()
            answer = await persona.answer(Query.from_text(question))
            times.append(time.perf_counter() - started)
            if expect_answer and answer.solver is None:
                raise RuntimeError(f"{question!r} got no answer")
    return statistics.median(times) * 1e6


async def run(runs: int) -> dict[str, dict[str, float]]:
    os.environ.setdefault("PERSONA_SERVER_FAKE_NOW", "2026-12-01T09:30:00+00:00")
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient() as client:
        personas = {
            name: Persona(parse_persona({"name": name, "solvers": [name]}, source="bench", default_name=name),
                          http=lambda: client)
            for name in [*QUESTIONS, BASELINE]
        }
        for persona in personas.values():
            await persona.start()
            await persona.wait_ready()
        baseline = personas[BASELINE]
        for name, questions in QUESTIONS.items():
            await median_us(personas[name], questions, 5, True)  # warm caches (pint parses, regexes)
            base = await median_us(baseline, questions, runs, True)
            answer = await median_us(personas[name], questions, runs, True)
            miss = await median_us(personas[name], [MISS], runs, False)
            results[name] = {"answer_us": answer, "baseline_us": base, "ratio": answer / base, "miss_us": miss}
        for persona in personas.values():
            await persona.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="times each question is asked")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args.runs))
    print(f"{'solver':<24}{'answer µs':>11}{'failure µs':>12}{'ratio':>8}{'no-answer µs':>14}")
    for name, row in results.items():
        print(f"{name:<24}{row['answer_us']:>11.1f}{row['baseline_us']:>12.1f}{row['ratio']:>8.1f}"
              f"{row['miss_us']:>14.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
