"""The Ollama-compatible API, on the same port as the OpenAI one: chat, generate, tags, show, ps, version.

Ollama clients stream NDJSON by default (when `stream` is absent) and read durations as integer nanoseconds.
Each persona is one model, listed as `Name:latest`; `model` matches with or without the tag, case-insensitively.
Errors are Ollama's `{"error": "..."}` (the app renders every APIError raised under `/api/` that way).

Our additions: the final object of an answer carries `solver` and `sources`, like the OpenAI routes, and the
request may carry `user` (who is asking: the key of per-conversation memory), `lang` and `units`.

Durations: `prompt_eval_duration` is the time until the first piece of the answer (the chain finding a solver
that answers), `eval_duration` the time spent streaming the rest; `load_duration` is 0 because personas stay
loaded, except for a load request (empty prompt), where it is the time spent waiting for the persona to load.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server import __version__, metrics
from persona_server.api import embedding_common, ollama_tools
from persona_server.api.context import json_response, read_body, read_model, server_state
from persona_server.api.errors import APIError, parse_json
from persona_server.api.schemas import Lenient, Stop, UserId
from persona_server.api.streaming import (
    AnswerStreamingResponse,
    ending_cleanly,
    ndjson_error,
    unless_disconnected,
    word_chunks,
)
from persona_server.api.tools import ChatTools
from persona_server.api.tools import apply as apply_tooling
from persona_server.catalog import Catalog
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens
from persona_server.timezones import TimezoneName
from persona_server.tooling import ToolCallPiece, merge_calls

# The Ollama API version we follow; clients use /api/version to decide which features they may use.
OLLAMA_VERSION = "0.6.3"
NDJSON = "application/x-ndjson"
# Personas never unload: `expires_at` in /api/ps is as far away as a client can parse.
NEVER = "9999-12-31T23:59:59Z"


class _Body(BaseModel):
    # Fields we do not use (`keep_alive`, `think`, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore", strict=True)


class Options(_Body):
    # Ollama's Go server takes 50.0 for an integer option, as OpenAI does.
    num_predict: Annotated[int, Lenient] | None = None
    stop: Stop = None
    temperature: Annotated[float, Field(ge=0)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None

    def token_limit(self) -> int | None:
        # Ollama: -1 is "no limit", -2 "fill the context"; neither limits a persona's answer.
        return self.num_predict if self.num_predict is not None and self.num_predict > 0 else None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = ""
    tool_calls: list[ollama_tools.OllamaToolCall] | None = None
    tool_name: str | None = None


class _Generation(_Body):
    model: str | None = None
    # Ollama streams unless told not to: absent or null means true.
    stream: bool | None = None
    options: Options | None = None
    # Extensions: who is asking (per-conversation memory), and the language and units of the answer.
    user: UserId | None = None
    lang: str | None = None
    units: Literal["metric", "imperial"] | None = None
    timezone: TimezoneName | None = None  # the asker's IANA zone, for the clock
    format: ollama_tools.Format = None  # "json" or a JSON schema (api/ollama_tools.py)

    def query(self, messages: list[Message], settings: Settings) -> Query:
        options = self.options or Options()
        return Query(
            messages=messages,
            lang=self.lang or settings.lang,
            units=self.units or settings.units,
            max_tokens=options.token_limit(),
            temperature=options.temperature,
            top_p=options.top_p,
            stop=options.stop_list(),
            user=self.user or None,
            timezone=self.timezone,
        )


class ChatRequest(_Generation):
    messages: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)]
    tools: ChatTools | None = None


class GenerateRequest(_Generation):
    prompt: str | None = ""
    system: str | None = None


Body = TypeVar("Body", bound=_Body)


async def _json_object(request: Request) -> dict[str, Any]:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    return data


async def _validated(request: Request, model: type[Body]) -> Body:
    return await read_model(request, model)  # straight from bytes, as every protocol; errors in Ollama's shape


def _pick(request: Request, model: str | None) -> Persona:
    """The persona `model` names (see Catalog.for_model); Ollama requires a model name."""
    if not model or not model.strip():
        raise APIError(400, "model is required")
    state = server_state(request)
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        metrics.record_refusal("unknown_model")
        raise APIError(404, f"model '{model}' not found")
    return persona


def tag(name: str) -> str:
    """A persona's Ollama model name: `Name:latest` (a name that already has a tag keeps it)."""
    return name if ":" in name else f"{name}:latest"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _line(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data) + b"\n"


# -- answering ------------------------------------------------------------------------------------------------


class _Answer:
    """One answer being produced, with the clock readings Ollama's duration fields need."""

    def __init__(self, persona: Persona, query: Query, started: int, chat: bool) -> None:
        self.model = tag(persona.name)
        self.chat = chat
        self.started = started
        self.prompt_tokens = sum(count_tokens(m.content) for m in query.messages)
        self.begun = time.perf_counter_ns()
        self.first: int | None = None
        self.stream: AnswerStream = persona.stream(query)

    def chunk(self, text: str, created_at: str, calls: list[ToolCallPiece] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": created_at}
        if self.chat:
            out["message"] = {"role": "assistant", "content": text}
            if calls:
                out["message"]["tool_calls"] = ollama_tools.tool_calls(merge_calls(calls))
        else:
            out["response"] = text
        out["done"] = False
        return out

    def final(self, text: str) -> dict[str, Any]:
        ended = time.perf_counter_ns()
        first = self.first if self.first is not None else ended
        out = self.chunk(text, now_rfc3339())
        out.update({
            "done": True,
            # Ollama says "stop" for an answer of tool calls too.
            "done_reason": "stop" if self.stream.finish_reason == "tool_calls" else self.stream.finish_reason,
            "total_duration": ended - self.started,
            "load_duration": 0,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": first - self.begun,
            "eval_count": self.stream.tokens,
            "eval_duration": ended - first,
            "solver": self.stream.solver,
            "sources": [s.to_dict() for s in self.stream.sources],
        })
        return out

    async def whole(self) -> str:
        # The chain's whole-answer path (no generator hop per piece): the answer is "first" once it is all there,
        # so the time to it is prompt_eval_duration and eval_duration is what building the reply takes.
        text = await self.stream.text()
        self.first = time.perf_counter_ns()
        return text

    def final_whole(self, text: str) -> dict[str, Any]:
        out = self.final(text)
        calls = self.stream.tool_calls
        if calls and self.chat:
            out["message"]["tool_calls"] = ollama_tools.tool_calls(calls)
        return out

    async def lines(self, ping_interval: float) -> AsyncIterator[bytes]:
        calls: list[ToolCallPiece] = []  # Ollama sends a tool call whole: gathered, sent at the end
        async for words in word_chunks(self.stream, ping_interval):
            created_at = now_rfc3339()
            if words is None:
                # NDJSON has no comments: an empty chunk keeps an idle connection alive and parses everywhere.
                yield _line(self.chunk("", created_at))
                continue
            if self.first is None:
                self.first = time.perf_counter_ns()
            calls += [word for word in words if type(word) is ToolCallPiece]  # type: ignore[misc]
            yield b"".join(_line(self.chunk(word, created_at)) for word in words if type(word) is str)
        if calls:
            yield _line(self.chunk("", now_rfc3339(), calls))
        yield _line(self.final(""))


async def _respond(request: Request, answer: _Answer, stream: bool) -> Response:
    if stream:
        settings: Settings = server_state(request).settings
        return AnswerStreamingResponse(ending_cleanly(answer.lines(settings.ping_interval), ndjson_error),
                                       media_type=NDJSON)
    text = await unless_disconnected(request, answer.whole())
    return json_response(answer.final_whole(text))


async def _load(request: Request, persona: Persona, started: int, chat: bool) -> Response:
    """An empty request loads the model: wait until the persona's solvers are loaded."""
    await unless_disconnected(request, persona.wait_ready())
    elapsed = time.perf_counter_ns() - started
    out: dict[str, Any] = {"model": tag(persona.name), "created_at": now_rfc3339()}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out.update({"done": True, "done_reason": "load", "total_duration": elapsed, "load_duration": elapsed})
    return json_response(out)


async def chat(request: Request) -> Response:
    started = time.perf_counter_ns()
    body = await _validated(request, ChatRequest)
    persona = _pick(request, body.model)
    if not body.messages:
        return await _load(request, persona, started, chat=True)
    if body.tools is None and not any(m.tool_calls or m.role == "tool" for m in body.messages):
        messages = [Message(m.role, m.content or "") for m in body.messages]
    else:
        messages = ollama_tools.messages(body.messages)
    query = body.query(messages, server_state(request).settings)
    if body.tools is not None or body.format:
        apply_tooling(persona, query, ollama_tools.tooling(body.tools, body.format))
    return await _respond(request, _Answer(persona, query, started, chat=True), body.stream is not False)


async def generate(request: Request) -> Response:
    started = time.perf_counter_ns()
    body = await _validated(request, GenerateRequest)
    persona = _pick(request, body.model)
    if not body.prompt and not body.system:
        return await _load(request, persona, started, chat=False)
    messages = [Message("system", body.system)] if body.system else []
    messages.append(Message("user", body.prompt or ""))
    query = body.query(messages, server_state(request).settings)
    if body.format:
        apply_tooling(persona, query, ollama_tools.tooling(None, body.format))
    return await _respond(request, _Answer(persona, query, started, chat=False), body.stream is not False)


# -- models ---------------------------------------------------------------------------------------------------


def _details() -> dict[str, Any]:
    return {"parent_model": "", "format": "persona", "family": "persona", "families": ["persona"],
            "parameter_size": "", "quantization_level": ""}


def _digest(persona: Persona) -> str:
    # What the persona is made of, never its solver configs (they may hold secrets).
    spec = persona.spec
    memory = spec.memory.turns if spec.memory else 0
    identity = {"name": spec.name, "solvers": spec.solvers, "speculative": spec.speculative, "memory": memory}
    return hashlib.sha256(orjson.dumps(identity)).hexdigest()


def _modified_at(persona: Persona, started: int) -> str:
    try:
        stamp = os.stat(persona.spec.source).st_mtime
    except OSError:
        stamp = float(started)
    return _stamp(stamp)


def _stamp(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _model(persona: Persona, started: int) -> dict[str, Any]:
    name = tag(persona.name)
    return {"name": name, "model": name, "modified_at": _modified_at(persona, started), "size": 0,
            "digest": _digest(persona), "details": _details()}


async def tags(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    started: int = server_state(request).started
    models = [_model(persona, started) for persona in catalog]
    models += embedding_common.ollama_model_entries(catalog, _stamp(float(started)))
    return json_response({"models": models})


async def ps(request: Request) -> Response:
    """Loaded models: the personas whose solvers have all finished loading."""
    catalog: Catalog = server_state(request).catalog
    models = []
    for persona in catalog:
        if persona.ready:
            name = tag(persona.name)
            models.append({"name": name, "model": name, "size": 0, "digest": _digest(persona),
                           "details": _details(), "expires_at": NEVER, "size_vram": 0})
    return json_response({"models": models})


async def show(request: Request) -> Response:
    data = await _json_object(request)
    model = data.get("model") or data.get("name")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "model is required")
    catalog: Catalog = server_state(request).catalog
    persona = catalog.get(model)
    if persona is None and embedding_common.is_listed_default(catalog, model):
        return json_response(_show_embedding_model(_stamp(float(server_state(request).started))))
    if persona is None:
        raise APIError(404, f"model '{model}' not found")
    solvers = [slot.name for slot in persona.slots]
    return json_response({
        "license": "",
        "modelfile": f"# persona-server persona {persona.name}\n# solvers: {', '.join(solvers)}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": _details(),
        "model_info": {
            "general.architecture": "persona",
            "general.basename": persona.name,
            "persona.solvers": solvers,
            "persona.ready": persona.ready,
            "persona.memory": persona.spec.memory.turns if persona.spec.memory else 0,
            "persona.description": persona.spec.description,
        },
        "capabilities": ["completion"],
        "modified_at": _modified_at(persona, server_state(request).started),
    })


def _show_embedding_model(modified_at: str) -> dict[str, Any]:
    (entry,) = embedding_common.ollama_model_entries_unchecked(modified_at)
    return {"license": "Apache-2.0", "modelfile": "# persona-server's built-in embedding model\n", "parameters": "",
            "template": "", "details": entry["details"], "capabilities": ["embedding"], "modified_at": modified_at,
            "model_info": {"general.architecture": "bert", "general.basename": "all-MiniLM-L6-v2",
                           "bert.embedding_length": 384, "bert.context_length": 256}}


async def version(request: Request) -> Response:
    return json_response({"version": OLLAMA_VERSION, "persona_server": __version__})


def routes() -> list[Route]:
    return [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/version", version, methods=["GET"]),
    ]
