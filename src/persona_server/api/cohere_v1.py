"""Cohere's v1 API: `POST /v1/chat` and `POST /v1/generate` (and under `/cohere/`), for `cohere.Client`.

Chat takes the question as `message`, the history as `chat_history` (`USER` / `CHATBOT` / `SYSTEM`), the system
prompt as `preamble`; `conversation_id` is the client's name for the conversation, so it keys server-side state
like `user`. Streams are JSON lines: `stream-start`, `text-generation`..., `stream-end` with the whole response.
Generate answers `prompt` `num_generations` times; as Cohere does, its `stop_sequences` stay in the text and its
`end_sequences` do not. Shared parts (persona, sampling, finish reasons, errors) are in `cohere.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api.cohere import (
    MAX_MESSAGES,
    MAX_STOP_SEQUENCES,
    Body,
    Sampling,
    StopText,
    finish_reason,
    metadata,
    pick_persona,
    refuse,
    refuse_response_format,
    usage,
)
from persona_server.api.context import json_response, new_id, read_model, server_state
from persona_server.api.errors import answer_error
from persona_server.api.streaming import StreamFailure, unless_disconnected, word_chunks
from persona_server.chain import AnswerStream
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens

STREAM_JSON = "application/stream+json"
# JSON lines have no comments; the SDK skips empty lines, so one keeps an idle stream alive.
KEEP_ALIVE = b"\n"
_ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system"}


def _line(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data) + b"\n"


def _meta(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"api_version": {"version": "1"}, **usage(prompt_tokens, output_tokens)}


# -- chat ---------------------------------------------------------------------------------------------------------


class HistoryMessage(Body):
    role: Literal["USER", "CHATBOT", "SYSTEM", "TOOL"]
    message: str = ""


class V1ChatRequest(Sampling):
    message: str
    preamble: str | None = None
    chat_history: Annotated[list[HistoryMessage], Field(max_length=MAX_MESSAGES)] | None = None
    conversation_id: str | None = None
    connectors: list[Any] | None = None
    search_queries_only: bool | None = None
    documents: list[Any] | None = None
    tools: list[Any] | None = None
    tool_results: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def check(self) -> None:
        if self.connectors:
            raise refuse("connectors", "personas search with their own solvers")
        if self.search_queries_only:
            raise refuse("search_queries_only", "personas do not write search queries")
        if self.documents:
            raise refuse("documents", "personas answer from their own solvers, not from given documents")
        if self.tools or self.tool_results:
            raise refuse("tools" if self.tools else "tool_results", "personas do not call tools")
        refuse_response_format(self.response_format)

    def history(self) -> list[Message]:
        # Tool turns carry no text (personas never call tools): they are left out.
        return [Message(_ROLES[m.role], m.message) for m in self.chat_history or [] if m.role in _ROLES]

    def messages(self) -> list[Message]:
        system = [Message("system", self.preamble)] if self.preamble else []
        return [*system, *self.history(), Message("user", self.message)]


class _Chat:
    """One v1 chat answer: its ids, token counts and the response object Cohere sends whole or at stream end."""

    def __init__(self, body: V1ChatRequest, stream: AnswerStream, prompt_tokens: int) -> None:
        self.body = body
        self.stream = stream
        self.prompt_tokens = prompt_tokens
        self.generation_id = new_id("")

    def response(self, text: str) -> dict[str, Any]:
        history = [{"role": m.role, "message": m.message} for m in self.body.chat_history or []]
        history += [{"role": "USER", "message": self.body.message}, {"role": "CHATBOT", "message": text}]
        return {
            "response_id": new_id(""),
            "text": text,
            "generation_id": self.generation_id,
            "chat_history": history,
            "finish_reason": finish_reason(self.stream),
            "meta": _meta(self.prompt_tokens, self.stream.tokens),
            **metadata(self.stream),
        }

    async def lines(self, ping_interval: float) -> AsyncIterator[bytes]:
        yield _line({"is_finished": False, "event_type": "stream-start", "generation_id": self.generation_id})
        parts: list[str] = []
        try:
            async for words in word_chunks(self.stream, ping_interval):
                if words is None:
                    yield KEEP_ALIVE
                    continue
                parts.extend(words)
                yield b"".join(_line({"is_finished": False, "event_type": "text-generation", "text": word})
                               for word in words)
        except StreamFailure as exc:
            response = self.response("".join(parts))
            response["finish_reason"] = "ERROR"
            response["error"] = answer_error(exc).message
            yield _line({"is_finished": True, "event_type": "stream-end", "finish_reason": "ERROR",
                         "response": response})
            return
        response = self.response("".join(parts))
        yield _line({"is_finished": True, "event_type": "stream-end", "finish_reason": response["finish_reason"],
                     "response": response})


async def chat(request: Request) -> Response:
    body = await read_model(request, V1ChatRequest)
    body.check()
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    messages = body.messages()
    query = body.query(messages, settings, user=body.conversation_id)
    answer = _Chat(body, persona.stream(query), sum(count_tokens(m.content) for m in messages))
    if body.stream:
        return StreamingResponse(answer.lines(settings.ping_interval), media_type=STREAM_JSON)
    text = await unless_disconnected(request, answer.stream.text())
    return json_response(answer.response(text))


# -- generate -----------------------------------------------------------------------------------------------------


class V1GenerateRequest(Sampling):
    prompt: str
    num_generations: Annotated[int, Field(ge=1, le=5)] = 1
    end_sequences: Annotated[list[StopText], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    return_likelihoods: Literal["GENERATION", "ALL", "NONE"] | None = None
    preset: str | None = None
    truncate: Literal["NONE", "START", "END"] | None = None
    raw_prompting: bool | None = None

    def check(self) -> None:
        if self.return_likelihoods not in (None, "NONE"):
            raise refuse("return_likelihoods", "personas have no token probabilities")
        if self.preset:
            raise refuse("preset", "presets live in Cohere's dashboard; send the parameters instead")

    def with_stop(self, text: str, stream: AnswerStream) -> str:
        """Cohere keeps a stop sequence in the text (an end sequence is cut): give back what the limit cut."""
        cut = stream.stop_sequence
        if cut is not None and cut in (self.stop_sequences or []) and cut not in (self.end_sequences or []):
            return text + cut
        return text


def _generation(body: V1GenerateRequest, index: int, text: str, stream: AnswerStream) -> dict[str, Any]:
    return {"id": new_id(""), "text": body.with_stop(text, stream), "index": index,
            "finish_reason": finish_reason(stream)}


async def generate(request: Request) -> Response:
    body = await read_model(request, V1GenerateRequest)
    body.check()
    persona = pick_persona(request, body.model)
    settings: Settings = server_state(request).settings
    query = body.query([Message("user", body.prompt)], settings, extra_stop=body.end_sequences)
    prompt_tokens = count_tokens(body.prompt)
    generation_id = new_id("")
    if body.stream:
        events = _generate_lines(persona, query, body, generation_id, settings.ping_interval)
        return StreamingResponse(events, media_type=STREAM_JSON)
    streams = [persona.stream(query) for _ in range(body.num_generations)]
    texts = await unless_disconnected(request, _texts(streams))
    return json_response({
        "id": generation_id,
        "prompt": body.prompt,
        "generations": [_generation(body, i, text, s) for i, (text, s) in enumerate(zip(texts, streams, strict=True))],
        "meta": _meta(prompt_tokens, sum(s.tokens for s in streams)),
        **metadata(streams[0]),
    })


async def _texts(streams: list[AnswerStream]) -> list[str]:
    if len(streams) == 1:
        return [await streams[0].text()]
    return list(await asyncio.gather(*(s.text() for s in streams)))


async def _generate_lines(persona: Persona, query: Query, body: V1GenerateRequest, generation_id: str,
                          ping_interval: float) -> AsyncIterator[bytes]:
    generations: list[dict[str, Any]] = []
    stream: AnswerStream | None = None
    for index in range(body.num_generations):
        stream = persona.stream(query)
        parts: list[str] = []
        try:
            async for words in word_chunks(stream, ping_interval):
                if words is None:
                    yield KEEP_ALIVE
                    continue
                parts.extend(words)
                yield b"".join(_line({"text": word, "is_finished": False, "event_type": "text-generation",
                                      "index": index}) for word in words)
        except StreamFailure as exc:
            yield _line({"event_type": "stream-error", "index": index, "is_finished": True, "finish_reason": "ERROR",
                         "err": answer_error(exc).message})
            return
        text = "".join(parts)
        full = body.with_stop(text, stream)
        if len(full) > len(text):  # the stop sequence Cohere keeps
            yield _line({"text": full[len(text):], "is_finished": False, "event_type": "text-generation",
                         "index": index})
        generations.append(_generation(body, index, text, stream))
    assert stream is not None
    yield _line({
        "is_finished": True, "event_type": "stream-end", "finish_reason": generations[-1]["finish_reason"],
        "response": {"id": generation_id, "prompt": body.prompt, "generations": generations},
        **metadata(stream),
    })


def routes() -> list[Route]:
    table = [("/v1/chat", chat), ("/v1/generate", generate)]
    return [Route(prefix + path, endpoint, methods=["POST"]) for prefix in ("", "/cohere") for path, endpoint in table]
