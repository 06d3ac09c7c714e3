"""Solvers that use other solvers: building them, running them side by side, and handing their answers on.

Shared by the LLM solvers (`context_solvers`, `tool_solvers`) and the mixture solver (`workers`). A reference to
another solver is either its name (configured from the persona's block for that name, like any chain entry) or
an inline object `{"solver": name, ...config}`, so one persona can use the same solver twice with two configs
(two LLM endpoints in one mixture, say).

Each helper solver is built and loaded once, when the solver that uses it loads. One that cannot be built or
loaded is left out with a warning: a grounded LLM without its look-ups still answers. A solver that names
itself, directly or through others, is refused instead of recursing forever.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from persona_server import secrets
from persona_server.query import Answer, Message, Query, Source
from persona_server.solvers import registry
from persona_server.solvers.base import Piece, Solver, SolverContext, whole_answer_pieces

log = logging.getLogger(__name__)

SolverRef = str | dict[str, Any]
"""A solver name, or `{"solver": name, ...config}`."""

# The solvers being loaded on this task's path, to refuse cycles (a mixture among its own workers).
_loading: ContextVar[tuple[str, ...]] = ContextVar("persona_server_loading", default=())


def ref_name(ref: SolverRef) -> str:
    if isinstance(ref, str):
        return ref
    name = ref.get("solver") or ref.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("an inline solver entry needs a 'solver' key naming the solver")
    return name.strip()


def build(ref: SolverRef, context: SolverContext) -> Solver:
    """Build a helper solver from a reference. Raises ValueError/LookupError with a readable reason."""
    if isinstance(ref, str):
        return context.solver(ref)
    name = ref_name(ref)
    cls = registry.resolve(name)
    config = {k: v for k, v in ref.items() if k not in ("solver", "name")}
    secrets.register_config(config)
    try:
        options = cls.Options.model_validate(config)
    except ValidationError as exc:
        from persona_server.persona import describe_validation_error

        raise ValueError(f"bad config for {name!r}: {describe_validation_error(exc)}") from None
    return cls(options, context)


@dataclass(slots=True)
class Helper:
    """A built and loaded helper solver, with the name it goes by."""

    name: str
    solver: Solver


@dataclass(slots=True)
class Result:
    """One helper's answer to one question."""

    name: str
    text: str
    sources: list[Source] = field(default_factory=list)


async def load_helpers(refs: Sequence[SolverRef], context: SolverContext, *, owner: str) -> list[Helper]:
    """Build and load helpers concurrently; the ones that fail are logged and left out."""
    path = _loading.get()
    token = _loading.set((*path, registry.canonical_name(owner)))
    try:
        built: list[Helper] = []
        for ref in refs:
            try:
                name = ref_name(ref)
                # A name means the persona's block for it: met again on this path, it is a cycle. (An inline
                # config is a different solver even when the class is the same.)
                if isinstance(ref, str) and registry.canonical_name(name) in _loading.get():
                    raise ValueError(f"{name!r} would use itself")
                built.append(Helper(name, build(ref, context)))
            except Exception as exc:
                _warn(context, owner, ref, f"cannot start: {exc}")
        outcomes = await asyncio.gather(*(h.solver.ensure_loaded() for h in built), return_exceptions=True)
    finally:
        _loading.reset(token)
    helpers: list[Helper] = []
    for helper, outcome in zip(built, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            _warn(context, owner, helper.name, f"failed to load: {outcome}")
        else:
            helpers.append(helper)
    return helpers


def _warn(context: SolverContext, owner: str, ref: SolverRef, problem: str) -> None:
    name = ref if isinstance(ref, str) else str(ref.get("solver", "?"))
    log.warning("persona %r: %s helper %r %s", context.persona, owner, name, secrets.redact(problem))


class GroundingSource(Protocol):
    """A solver with more to give as grounding than its one answer (the knowledge solver: its best passages)."""

    async def grounding_context(self, query: Query) -> Answer | None: ...


async def _context_pieces(solver: GroundingSource, query: Query) -> AsyncIterator[Piece]:
    for piece in whole_answer_pieces(await solver.grounding_context(query)):
        yield piece


async def ask(helper: Helper, query: Query, *, limit: float | None = None,
              grounding: bool = False) -> Result | None:
    """One helper's whole answer within its timeout, or None (no answer, an error, too slow). With `grounding`,
    a solver that offers `grounding_context` gives that instead of its answer."""
    solver = helper.solver
    if not solver.chat:
        query = query.for_question_solver()
    limit = limit if limit is not None else solver.timeout
    pieces: list[str] = []
    sources: list[Source] = []
    context = getattr(solver, "grounding_context", None) if grounding else None
    stream = _context_pieces(solver, query) if context is not None else solver.stream(query)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(limit):
            async for piece in stream:
                if isinstance(piece, Source):
                    sources.append(piece)
                else:
                    pieces.append(piece)
    except TimeoutError:
        log.info("helper %r: no answer within %g s", helper.name, limit)
        return None
    except Exception as exc:
        log.info("helper %r failed: %s", helper.name, secrets.redact(f"{type(exc).__name__}: {exc}"))
        return None
    text = "".join(pieces).strip()
    return Result(helper.name, text, sources) if text else None


async def ask_all(helpers: Sequence[Helper], query: Query, *, limit: float | None = None,
                  grounding: bool = False) -> list[Result]:
    """Every helper at once, each under its own timeout; the answers in helper order, missing ones left out."""
    results = await asyncio.gather(*(ask(h, query, limit=limit, grounding=grounding) for h in helpers))
    return [r for r in results if r is not None]


def helpers_budget(helpers: Sequence[Helper], limit: float | None = None) -> float:
    """The longest a concurrent `ask_all` can take."""
    if limit is not None:
        return limit if helpers else 0.0
    return max((h.solver.timeout for h in helpers), default=0.0)


# -- grounding an LLM -------------------------------------------------------------------------------------

GROUNDING_INSTRUCTION = (
    "Answer the user's question relying on the reference information below; it was looked up just now for "
    "this question. Prefer it over what you remember. If it does not answer the question, say so briefly "
    "instead of guessing."
)


def grounding_text(results: Sequence[Result]) -> str:
    """The look-up answers as a block for the system message."""
    blocks = [f"[{i}] ({r.name}) {r.text}" for i, r in enumerate(results, 1)]
    return GROUNDING_INSTRUCTION + "\n\nReference information:\n" + "\n\n".join(blocks)


def chat_messages(query: Query, system_prompt: str | None, extra_system: str | None = None) -> list[dict[str, Any]]:
    """The OpenAI `messages` for a query, with one leading system message.

    The rule: the persona's system prompt comes first, then the client's system (and developer) messages, in
    their order, then `extra_system` (grounding), all joined into ONE system message at the start. One,
    because many chat templates (Mistral, Gemma, several in llama.cpp and Ollama) reject or silently drop a
    second system message or one that is not first; the persona's prompt leads so it sets the identity, and
    the client's instructions, read after it, can refine it. The rest of the history (user and assistant
    turns) follows unchanged; the client's own tool messages are not forwarded (their tool calls are not
    ours to answer).
    """
    system_parts = [system_prompt.strip()] if system_prompt and system_prompt.strip() else []
    turns: list[dict[str, Any]] = []
    for message in query.messages:
        if message.role in ("system", "developer"):
            if message.content.strip():
                system_parts.append(message.content.strip())
        elif message.role in ("user", "assistant"):
            turns.append({"role": message.role, "content": message.content})
    if extra_system:
        system_parts.append(extra_system)
    head = [{"role": "system", "content": "\n\n".join(system_parts)}] if system_parts else []
    return head + turns


# -- tool calling -----------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]+")
_NOISE = re.compile(r"^(ovos|persona)_solver_(plugin_)?|_plugin$|^ovos_")


# Tools that are not searches: their function names, and what their one argument should say.
NAMED_TOOLS: dict[str, tuple[str, str]] = {
    "persona-solver-math": ("calculate", "the arithmetic question or expression, e.g. '15% of 80' or '(3+4)*2'"),
    "persona-solver-units": ("convert_units", "the conversion, e.g. '30 celsius to fahrenheit' or '5 miles in km'"),
    "persona-solver-clock": ("current_time", "the question, e.g. 'what time is it in Tokyo' or 'what day is it'"),
}


def tool_name(name: str) -> str:
    """An OpenAI function name for a solver: "ovos-solver-plugin-wikipedia" -> "search_wikipedia"."""
    canonical = registry.canonical_name(name)
    if canonical in NAMED_TOOLS:
        return NAMED_TOOLS[canonical][0]
    short = [alias for alias, target in registry.ALIASES.items() if target == canonical]
    base = min(short, key=len) if short else name
    base = _NOISE.sub("", _UNSAFE.sub("_", base).strip("_").lower()) or "solver"
    return f"search_{base}"[:64]


def tool_spec(name: str, helper: Helper) -> dict[str, Any]:
    description = type(helper.solver).description or f"Ask the {helper.name} solver."
    named = NAMED_TOOLS.get(registry.canonical_name(helper.solver.name))
    argument = named[1] if named else "the question or search terms"
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{description} Returns a short text answer.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": argument}},
                "required": ["query"],
            },
        },
    }


def tool_table(helpers: Sequence[Helper]) -> dict[str, Helper]:
    """Function name -> helper, with unique names."""
    table: dict[str, Helper] = {}
    for helper in helpers:
        name = tool_name(helper.name)
        candidate, n = name, 2
        while candidate in table:
            candidate, n = f"{name[:60]}_{n}", n + 1
        table[candidate] = helper
    return table


def tool_query(arguments: str, query: Query) -> Query:
    """The look-up a tool call asks for: its `query` argument, or the user's question when it has none."""
    text = ""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        parsed = arguments  # some models send the bare string
    if isinstance(parsed, dict):
        value = parsed.get("query") or next((v for v in parsed.values() if isinstance(v, str)), "")
        text = value if isinstance(value, str) else ""
    elif isinstance(parsed, str):
        text = parsed
    text = text.strip() or query.question
    return Query(messages=[Message("user", text)], lang=query.lang, units=query.units, persona=query.persona,
                 conversation=query.conversation_id, timezone=query.timezone)


async def ground(helpers: Sequence[Helper], query: Query) -> tuple[str | None, list[Source]]:
    """Run the context solvers for a query: the system-message block (None when none answered) and sources."""
    if not helpers:
        return None, []
    results = await ask_all(helpers, query, grounding=True)
    sources = [source for result in results for source in result.sources]
    return (grounding_text(results) if results else None), sources
