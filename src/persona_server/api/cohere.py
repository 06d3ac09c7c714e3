"""Cohere's API, v2 chat: `POST /v2/chat` (and `/cohere/v2/chat`), so `cohere.ClientV2(base_url=...)` works.

The v1 routes (`/v1/chat`, `/v1/generate`) are in `cohere_v1.py`; what both share is here: the persona the
`model` names, the sampling fields, usage, finish reasons and Cohere's error body `{"message": ...}`.

A v2 stream is SSE with named events: `message-start`, `content-start`, `content-delta`..., `content-end`,
`message-end` (finish reason and usage). Fields we cannot honour (`tools`, `documents`, JSON `response_format`,
`logprobs`, `thinking`, images) are refused with a 400 rather than ignored. `safety_mode` is accepted: it picks a
Cohere model's safety preamble, and a persona has its own rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import APIError, answer_error, json_error, register_error_format
from persona_server.api.streaming import (
    SSE_HEADERS,
    SSE_PING,
    StreamFailure,
    sse_named_event,
    stop_reason,
    unless_disconnected,
    word_chunks,
)
from persona_server.chain import AnswerStream
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens

MAX_MESSAGES = 1000
MAX_STOP_SEQUENCES = 5  # as Cohere allows
StopText = Annotated[str, Field(max_length=1000)]


# For /openapi.json (api/routes.py).
ERROR_SCHEMA = {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}


def cohere_error(error: APIError) -> Response:
    return json_error({"message": error.message}, error)


register_error_format(cohere_error, paths=("/v1/chat", "/v1/generate"), prefixes=("/v2/", "/cohere/"))


def refuse(field: str, why: str) -> APIError:
    return APIError(400, f"'{field}' is not supported: {why}", param=field)


def pick_persona(request: Request, model: str | None) -> Persona:
    """The persona `model` names (unknown: the default one, or Cohere's 404 with --strict-models)."""
    state = server_state(request)
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        raise APIError(404, f"model '{model}' not found, make sure the correct model ID was used and that you "
                            "have access to the model.")
    return persona


def finish_reason(stream: AnswerStream) -> str:
    return stop_reason(stream, end="COMPLETE", length="MAX_TOKENS", stop_sequence="STOP_SEQUENCE")


def usage(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    counts = {"input_tokens": prompt_tokens, "output_tokens": output_tokens}
    return {"billed_units": counts, "tokens": counts}


def metadata(stream: AnswerStream) -> dict[str, Any]:
    """Our extension fields: which solver answered, and where the answer came from."""
    return {"solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}


class Body(BaseModel):
    # Fields we do not use and that change nothing (`priority`, `citation_options`, ...) are accepted.
    model_config = ConfigDict(extra="ignore", strict=True)


class Sampling(Body):
    """What every Cohere generation request carries: the model, limits and sampling hints."""

    model: str | None = None
    stream: bool | None = False
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    stop_sequences: Annotated[list[StopText], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    p: Annotated[float, Field(ge=0, le=1)] | None = None
    # Sampling knobs an LLM solver has no parameter for; harmless to accept, like OpenAI's penalties.
    k: Annotated[int, Field(ge=0, le=500)] | None = None
    seed: int | None = None
    frequency_penalty: Annotated[float, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=0, le=1)] | None = None
    # Extensions: who is asking (per-conversation state), and the language and units of the answer.
    user: str | None = None
    lang: str | None = None
    units: Literal["metric", "imperial"] | None = None

    def query(self, messages: list[Message], settings: Settings, *, extra_stop: list[str] | None = None,
              user: str | None = None) -> Query:
        return Query(
            messages=messages,
            lang=self.lang or settings.lang,
            units=self.units or settings.units,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.p,
            stop=[*(self.stop_sequences or []), *(extra_stop or [])],
            user=self.user or user or None,
        )


def refuse_response_format(response_format: dict[str, Any] | None) -> None:
    if response_format and response_format.get("type", "text") != "text":
        raise refuse("response_format", "a persona answers in text; it cannot promise JSON")


# -- v2 chat ----------------------------------------------------------------------------------------------------


class V2ContentPart(Body):
    type: str
    text: str | None = None

    def words(self) -> str:
        if self.type == "text":
            return self.text or ""
        if self.type == "thinking":
            return ""  # a model's reasoning in the history is not part of the conversation
        if self.type in ("image_url", "image"):
            raise refuse("messages.content", "personas answer text; images cannot be read")
        raise refuse("messages.content", f"content of type '{self.type}' cannot be read")


class V2ChatMessage(Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | Annotated[list[V2ContentPart], Field(max_length=MAX_MESSAGES)] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "\n".join(part.words() for part in self.content)


class V2ChatRequest(Sampling):
    messages: Annotated[list[V2ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    documents: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    thinking: dict[str, Any] | None = None

    def check(self) -> None:
        if self.tools:
            raise refuse("tools", "personas do not call tools")
        if self.tool_choice is not None:
            raise refuse("tool_choice", "personas do not call tools")
        if self.documents:
            raise refuse("documents", "personas answer from their own solvers, not from given documents")
        refuse_response_format(self.response_format)
        if self.logprobs:
            raise refuse("logprobs", "personas have no token probabilities")
        if self.thinking and self.thinking.get("type") == "enabled":
            raise refuse("thinking", "personas do not reason step by step")


def _message(answer_id: str, text: str, stream: AnswerStream, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": answer_id,
        "finish_reason": finish_reason(stream),
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": usage(prompt_tokens, stream.tokens),
        **metadata(stream),
    }


async def chat_v2(request: Request) -> Response:
    body = await read_model(request, V2ChatRequest)
    body.check()
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    messages = [Message(m.role, m.text()) for m in body.messages]
    query = body.query(messages, settings)
    prompt_tokens = sum(count_tokens(m.content) for m in messages)
    answer_id = new_id("")
    stream = persona.stream(query)
    if body.stream:
        events = _v2_events(stream, answer_id, prompt_tokens, settings.ping_interval)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    text = await unless_disconnected(request, stream.text())
    return json_response(_message(answer_id, text, stream, prompt_tokens))


def _delta(text: str) -> bytes:
    return sse_named_event("content-delta", {"type": "content-delta", "index": 0,
                                             "delta": {"message": {"content": {"text": text}}}})


_CONTENT_END = sse_named_event("content-end", {"type": "content-end", "index": 0})


async def _v2_events(stream: AnswerStream, answer_id: str, prompt_tokens: int,
                     ping_interval: float) -> AsyncIterator[bytes]:
    yield sse_named_event("message-start", {
        "id": answer_id, "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
                              "citations": []}},
    }) + sse_named_event("content-start", {
        "type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}},
    })
    try:
        async for words in word_chunks(stream, ping_interval):
            yield SSE_PING if words is None else b"".join(_delta(word) for word in words)
    except StreamFailure as exc:
        # The answer broke off (or never came): say so in Cohere's terms rather than ending as if complete.
        yield _CONTENT_END + sse_named_event("message-end", {
            "type": "message-end",
            "delta": {"finish_reason": "ERROR", "error": answer_error(exc).message,
                      "usage": usage(prompt_tokens, stream.tokens)},
        })
        return
    yield _CONTENT_END + sse_named_event("message-end", {
        "type": "message-end",
        "delta": {"finish_reason": finish_reason(stream), "usage": usage(prompt_tokens, stream.tokens)},
        **metadata(stream),
    })


def routes() -> list[Route]:
    return [Route(prefix + "/v2/chat", chat_v2, methods=["POST"]) for prefix in ("", "/cohere")]
