"""The OpenAI-compatible API: chat completions, legacy completions and models.

Each handler translates JSON into a `Query`, lets the persona that `model` names answer it, and translates the
answer back. Served under `/v1` and at the root, as old clients post to `/chat/completions`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server import metrics
from persona_server.api import embedding_common
from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import APIError
from persona_server.api.schemas import ChatCompletionRequest, CompletionRequest
from persona_server.api.streaming import (
    SSE_DONE,
    SSE_HEADERS,
    SSE_PING,
    AnswerStreamingResponse,
    ending_cleanly,
    sse_error,
    sse_event,
    unless_disconnected,
    word_chunks,
)
from persona_server.api.tools import apply as apply_tooling
from persona_server.catalog import Catalog
from persona_server.chain import AnswerStream
from persona_server.limits import gather_bounded
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.solvers.openai_wire import tool_calls_json
from persona_server.text import count_tokens
from persona_server.tooling import ToolCallPiece

OWNER = "persona-server"


def pick_persona(request: Request, model: str | None) -> Persona:
    """The persona `model` names (see Catalog.for_model), as an OpenAI 404 when there is none."""
    state = server_state(request)
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        metrics.record_refusal("unknown_model")
        raise APIError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
    return persona


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _metadata(stream: AnswerStream) -> dict[str, Any]:
    """Our extension fields: which solver answered, and where the answer came from."""
    return {"solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}


async def _answer(persona: Persona, query: Query) -> tuple[str, AnswerStream]:
    stream = persona.stream(query)
    return await stream.text(), stream


async def _answers(persona: Persona, queries: list[Query]) -> list[tuple[str, AnswerStream]]:
    if len(queries) == 1:
        return [await _answer(persona, queries[0])]
    # A few at a time: n choices or a list of prompts must not start every answer at once.
    return await gather_bounded(functools.partial(_answer, persona, query) for query in queries)


# -- chat completions -----------------------------------------------------------------------------------------


async def chat_completions(request: Request) -> Response:
    body = await read_model(request, ChatCompletionRequest)
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    messages = body.to_messages()
    query = body.query(messages, lang=settings.lang, units=settings.units)
    if body.tools is not None or body.tool_choice is not None or body.response_format is not None:
        apply_tooling(persona, query, body.tooling())
    prompt_tokens = sum([count_tokens(m.content) for m in messages])
    completion_id = new_id("chatcmpl-")
    created = int(time.time())
    if body.stream:
        events = _chat_events(persona, query, body, completion_id, created, prompt_tokens, settings.ping_interval)
        return AnswerStreamingResponse(ending_cleanly(events, sse_error), media_type="text/event-stream",
                                       headers=SSE_HEADERS)

    if body.n == 1:  # one coroutine less for the common case
        results = [await unless_disconnected(request, _answer(persona, query))]
    else:
        results = await unless_disconnected(request, _answers(persona, [query] * body.n))
    choices = [
        {
            "index": index,
            "message": _message(text, stream),
            "logprobs": None,
            "finish_reason": stream.finish_reason,
        }
        for index, (text, stream) in enumerate(results)
    ]
    first = results[0][1]
    return json_response({
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": persona.name,
        "choices": choices,
        "usage": _usage(prompt_tokens, sum([stream.tokens for _, stream in results])),
        "system_fingerprint": None,
        **_metadata(first),
    })


def _message(text: str, stream: AnswerStream) -> dict[str, Any]:
    calls = stream.tool_calls
    if not calls:
        return {"role": "assistant", "content": text, "refusal": None}
    # As OpenAI: a message of tool calls has `content: null` unless the model said something too.
    return {"role": "assistant", "content": text or None, "refusal": None, "tool_calls": tool_calls_json(calls)}


def _call_delta(piece: ToolCallPiece) -> dict[str, Any]:
    """A tool call fragment as OpenAI streams it: the first carries id, type and name, the rest arguments."""
    if piece.id or piece.name:
        return {"tool_calls": [{"index": piece.index, "id": piece.id or f"call_{piece.index}", "type": "function",
                                "function": {"name": piece.name, "arguments": piece.arguments}}]}
    return {"tool_calls": [{"index": piece.index, "function": {"arguments": piece.arguments}}]}


async def _chat_events(persona: Persona, query: Query, body: ChatCompletionRequest, completion_id: str,
                       created: int, prompt_tokens: int, ping_interval: float) -> AsyncIterator[bytes]:
    include_usage = body.include_usage

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None,
              extra: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": persona.name,
            "system_fingerprint": None,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None
        if extra:
            data.update(extra)
        return sse_event(data)

    completion_tokens = 0
    for index in range(body.n):
        stream = persona.stream(query)
        yield chunk(index, {"role": "assistant", "content": ""})
        async for words in word_chunks(stream, ping_interval):
            if words is None:
                yield SSE_PING
            else:
                extra = {"solver": stream.solver}
                yield b"".join(chunk(index, {"content": word} if type(word) is str else _call_delta(word),  # type: ignore[arg-type]
                                     extra=extra) for word in words)
        completion_tokens += stream.tokens
        yield chunk(index, {}, stream.finish_reason, extra=_metadata(stream))
    if include_usage:
        yield sse_event({
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": persona.name,
            "system_fingerprint": None,
            "choices": [],
            "usage": _usage(prompt_tokens, completion_tokens),
        })
    yield SSE_DONE


# -- legacy completions -----------------------------------------------------------------------------------------


async def completions(request: Request) -> Response:
    body = await read_model(request, CompletionRequest)
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    prompts = body.prompts()
    queries = [body.query([Message("user", p)], lang=settings.lang, units=settings.units) for p in prompts]
    prompt_tokens = sum(count_tokens(p) for p in prompts)
    completion_id = new_id("cmpl-")
    created = int(time.time())
    # One choice per prompt and per n, in that order, as OpenAI numbers them.
    jobs = [(prompt, query) for prompt, query in zip(prompts, queries, strict=True) for _ in range(body.n)]
    if body.stream:
        events = _completion_events(persona, jobs, body, completion_id, created, prompt_tokens,
                                    settings.ping_interval)
        return AnswerStreamingResponse(ending_cleanly(events, sse_error), media_type="text/event-stream",
                                       headers=SSE_HEADERS)

    results = await unless_disconnected(request, _answers(persona, [query for _, query in jobs]))
    choices = [
        {
            "index": index,
            "text": (prompt if body.echo else "") + text,
            "logprobs": None,
            "finish_reason": stream.finish_reason,
        }
        for index, ((prompt, _), (text, stream)) in enumerate(zip(jobs, results, strict=True))
    ]
    return json_response({
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": persona.name,
        "choices": choices,
        "usage": _usage(prompt_tokens, sum([stream.tokens for _, stream in results])),
        **_metadata(results[0][1]),
    })


async def _completion_events(persona: Persona, jobs: list[tuple[str, Query]], body: CompletionRequest,
                             completion_id: str, created: int, prompt_tokens: int,
                             ping_interval: float) -> AsyncIterator[bytes]:
    def chunk(index: int, text: str, finish_reason: str | None = None,
              extra: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": persona.name,
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        }
        if body.include_usage:
            data["usage"] = None
        if extra:
            data.update(extra)
        return sse_event(data)

    completion_tokens = 0
    for index, (prompt, query) in enumerate(jobs):
        stream = persona.stream(query)
        if body.echo:
            yield chunk(index, prompt)
        async for words in word_chunks(stream, ping_interval):
            if words is None:
                yield SSE_PING
            else:
                extra = {"solver": stream.solver}
                yield b"".join(chunk(index, word, extra=extra) for word in words)
        completion_tokens += stream.tokens
        yield chunk(index, "", stream.finish_reason, extra=_metadata(stream))
    if body.include_usage:
        yield sse_event({
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": persona.name,
            "choices": [],
            "usage": _usage(prompt_tokens, completion_tokens),
        })
    yield SSE_DONE


# -- models -------------------------------------------------------------------------------------------------------


def _model(persona: Persona, created: int) -> dict[str, Any]:
    return {"id": persona.name, "object": "model", "created": created, "owned_by": OWNER}


async def list_models(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    created = server_state(request).started
    models = [_model(p, created) for p in catalog] + embedding_common.openai_model_entries(catalog, created)
    return json_response({"object": "list", "data": models})


async def retrieve_model(request: Request) -> Response:
    catalog: Catalog = server_state(request).catalog
    model_id = request.path_params["model_id"]
    persona = catalog.get(model_id) if model_id.strip() else None
    if persona is None and embedding_common.is_listed_default(catalog, model_id):
        return json_response(embedding_common.openai_model_entry(server_state(request).started))
    if persona is None:
        raise APIError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return json_response(_model(persona, server_state(request).started))


def routes() -> list[Route]:
    """Every OpenAI route, under /v1 and at the root (openai 0.28 clients with a bare base URL)."""
    table = [
        ("/chat/completions", chat_completions, ["POST"]),
        ("/completions", completions, ["POST"]),
        ("/models", list_models, ["GET"]),
        ("/models/{model_id:path}", retrieve_model, ["GET"]),
    ]
    return [Route(prefix + path, endpoint, methods=methods)
            for prefix in ("/v1", "") for path, endpoint, methods in table]
