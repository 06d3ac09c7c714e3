"""Speculation: three look-up solvers of 300 ms each where the first two miss, in order against speculative.

In-process (no HTTP): the same persona is run with `"speculative": false` (the baseline: each solver waits for
the one before it) and with speculation on (all look-ups start at once, answers used in chain order). The
target is an answer within 1.2 x 300 ms with speculation, against >= 900 ms in order.

    python bench/speculation.py [--delay 0.3] [--runs 5] [--json bench/results/speculation.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from persona_server.persona import Persona, parse_persona
from persona_server.query import Query
from persona_server.solvers import registry
from persona_server.solvers.base import Solver, SolverOptions


class SleepOptions(SolverOptions):
    text: str = ""
    delay: float = 0.3


@registry.register
class SleepyLookup(Solver):
    """A look-up that takes `delay` seconds and answers `text` ("" = no answer)."""

    name = "bench-sleepy-lookup"
    speculative = True
    Options = SleepOptions
    options: SleepOptions

    async def answer(self, query: Query) -> str:
        await asyncio.sleep(self.options.delay)
        return self.options.text


def persona(delay: float, speculative: bool) -> Persona:
    names = [f"bench-sleepy-lookup-{i}" for i in range(3)]
    for name in names:
        registry.register(SleepyLookup, name)
    data = {
        "name": "speculation", "speculative": speculative, "solvers": names,
        names[0]: {"delay": delay}, names[1]: {"delay": delay}, names[2]: {"delay": delay, "text": "found it"},
    }
    return Persona(parse_persona(data, source="bench", default_name="bench"), http=lambda: httpx.AsyncClient())


async def time_answers(p: Persona, runs: int) -> list[float]:
    await p.start()
    await p.wait_ready()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await p.answer(Query.from_text("what is a bench?"))
        times.append(time.perf_counter() - started)
        assert answer.text == "found it", answer
    return times


async def run(delay: float, runs: int) -> dict[str, float]:
    in_order = statistics.median(await time_answers(persona(delay, speculative=False), runs))
    speculative = statistics.median(await time_answers(persona(delay, speculative=True), runs))
    return {"delay_s": delay, "in_order_s": in_order, "speculative_s": speculative,
            "speculative_over_delay": speculative / delay, "speedup": in_order / speculative}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args.delay, args.runs))
    print(f"three look-ups of {args.delay * 1000:.0f} ms, the first two missing (median of {args.runs}):")
    print(f"  in order:    {result['in_order_s'] * 1000:7.1f} ms")
    print(f"  speculative: {result['speculative_s'] * 1000:7.1f} ms"
          f" = {result['speculative_over_delay']:.2f} x one look-up, {result['speedup']:.1f}x faster")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
