"""The AWS Bedrock runtime API: `converse`, `converse-stream`, `invoke`, `invoke-with-response-stream` under
`/model/{modelId}/...` (also `/bedrock/model/...`); the model id names the persona.

Converse takes `messages` of text content blocks, `system` and `inferenceConfig` (`maxTokens`, `stopSequences`,
`temperature`, `topP`) and answers with `stopReason` `end_turn` / `max_tokens` / `stop_sequence` and usage; our
`solver` and `sources` go in `additionalModelResponseFields`. Invoke takes the Anthropic Messages body that
Bedrock's Claude models take (see api/anthropic.py) and answers in that format. Streams use AWS's binary
event-stream framing (api/bedrock_eventstream.py). Errors are `{"message"}` with the `x-amzn-ErrorType` header
botocore reads the error class from.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server.api import anthropic, bedrock_tools
from persona_server.api import bedrock_eventstream as eventstream
from persona_server.api.context import json_response, read_body, read_model, server_state
from persona_server.api.errors import (
    APIError,
    answer_error,
    from_validation_error,
    parse_json,
    register_error_format,
)
from persona_server.api.schemas import MAX_STOP_SEQUENCES, StopSequence
from persona_server.api.streaming import StreamFailure, stop_reason, word_chunks
from persona_server.api.tools import apply as apply_tooling
from persona_server.chain import AnswerStream
from persona_server.limits import MAX_MESSAGES
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.tooling import ToolCallPiece

_EXCEPTIONS = {
    400: ("ValidationException", 400),
    401: ("AccessDeniedException", 403),  # AWS answers a bad credential with 403
    403: ("AccessDeniedException", 403),
    404: ("ResourceNotFoundException", 404),
    413: ("ValidationException", 413),
    429: ("ThrottlingException", 429),
    502: ("ModelErrorException", 424),  # the answering solver failed: the model's fault, as Bedrock says
    503: ("ServiceUnavailableException", 503),
}


def bedrock_error(error: APIError) -> Response:
    fallback = ("InternalServerException", 500) if error.status >= 500 else ("ValidationException", error.status)
    kind, status = _EXCEPTIONS.get(error.status, fallback)
    return Response(orjson.dumps({"message": error.message}), status_code=status, media_type="application/json",
                    headers={"x-amzn-ErrorType": kind})


# Every path of this protocol starts with one of these (see api/routing.py).
PREFIXES = ("/model/", "/bedrock/")

register_error_format(bedrock_error, prefixes=PREFIXES)

# The body; the error's class is in the `x-amzn-ErrorType` header.
ERROR_SCHEMA: dict[str, Any] = {"type": "object", "required": ["message"],
                                "properties": {"message": {"type": "string"}}}


def pick_persona(request: Request) -> Persona:
    state = server_state(request)
    model_id = request.path_params["model_id"]
    persona = state.catalog.for_model(model_id, strict=state.settings.strict_models)
    if persona is None:
        raise APIError(404, f"The model '{model_id}' does not exist.")
    return persona


# -- converse -----------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    # Unknown fields are refused: each names a feature (tools, guardrails, ...) we would otherwise silently drop.
    model_config = ConfigDict(extra="forbid", strict=True)


class ContentBlock(_Body):
    text: str | None = None
    cachePoint: dict[str, Any] | None = None  # a caching hint: nothing to honour
    toolUse: bedrock_tools.ToolUse | None = None  # see api/bedrock_tools.py
    toolResult: bedrock_tools.ToolResult | None = None


class ConverseMessage(_Body):
    role: Literal["user", "assistant"]
    content: Annotated[list[ContentBlock], Field(max_length=100)]


class InferenceConfig(_Body):
    maxTokens: Annotated[int, Field(ge=1)] | None = None
    stopSequences: Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    topP: Annotated[float, Field(ge=0, le=1)] | None = None


class ConverseRequest(_Body):
    messages: Annotated[list[ConverseMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    system: Annotated[list[ContentBlock], Field(max_length=100)] | None = None
    inferenceConfig: InferenceConfig | None = None
    # Hints with nothing to honour: labels for logs, latency and service tiers.
    requestMetadata: dict[str, str] | None = None
    performanceConfig: dict[str, Any] | None = None
    serviceTier: dict[str, Any] | None = None
    additionalModelResponseFieldPaths: list[str] | None = None  # ours are always there
    toolConfig: bedrock_tools.ToolConfig | None = None

    def to_messages(self) -> list[Message]:
        system = "\n".join(block.text for block in self.system or [] if block.text is not None)
        messages = [Message("system", system)] if system else []
        for index, message in enumerate(self.messages):
            uses = [b.toolUse for b in message.content if b.toolUse is not None]
            results = [b.toolResult for b in message.content if b.toolResult is not None]
            if uses or results:
                text = "\n".join(b.text for b in message.content if b.text is not None)
                messages += bedrock_tools.block_messages(message.role, uses, results, text)
            else:
                messages.append(Message(message.role, _text(message.content, f"messages.{index}.content")))
        return messages

    def query(self, messages: list[Message], lang: str, units: Literal["metric", "imperial"]) -> Query:
        config = self.inferenceConfig or InferenceConfig()
        return Query(messages=messages, lang=lang, units=units, max_tokens=config.maxTokens,
                     temperature=config.temperature, top_p=config.topP, stop=list(config.stopSequences or []))


def _text(blocks: list[ContentBlock], where: str) -> str:
    texts = [block.text for block in blocks if block.text is not None]
    if not texts:
        raise APIError(400, f"{where}: a message needs at least one text content block.")
    return "\n".join(texts)


def _stop_reason(stream: AnswerStream) -> str:
    if stream.finish_reason == "tool_calls":
        return "tool_use"
    return stop_reason(stream, end="end_turn", length="max_tokens", stop_sequence="stop_sequence")


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens}


def _extra(persona: Persona, stream: AnswerStream) -> dict[str, Any]:
    return {"model": persona.name, "solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}


async def _conversation(request: Request) -> tuple[Persona, Query, int]:
    body = await read_model(request, ConverseRequest)
    persona = pick_persona(request)
    settings = server_state(request).settings
    messages = body.to_messages()
    query = body.query(messages, settings.lang, settings.units)
    if body.toolConfig is not None:
        apply_tooling(persona, query, bedrock_tools.tooling(body.toolConfig))
    return persona, query, anthropic.input_tokens(messages)


async def converse(request: Request) -> Response:
    """Converse (Bedrock runtime)"""
    started = time.monotonic()
    persona, query, input_tokens = await _conversation(request)
    text, stream = await anthropic.answer_text(request, persona, query)
    calls = stream.tool_calls
    content = ([{"text": text}] if text or not calls else []) + bedrock_tools.tool_use_blocks(calls)
    return json_response({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _stop_reason(stream),
        "usage": _usage(input_tokens, stream.tokens),
        "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
        "additionalModelResponseFields": _extra(persona, stream),
    })


async def _converse_events(persona: Persona, query: Query, input_tokens: int,
                           ping_interval: float) -> AsyncIterator[bytes]:
    started = time.monotonic()
    yield eventstream.event("messageStart", {"role": "assistant"})
    stream = persona.stream(query)
    # Content blocks one after the other: text first (index 0), then each tool use, which opens with its id
    # and name; the open block closes when the next one starts, and at the end.
    blocks, text_open = 0, False
    calls: dict[int, int] = {}  # tool call index -> block index
    try:
        async for words in word_chunks(stream, ping_interval):
            if not words:  # the event stream has no keep-alive message
                continue
            frames = []
            for word in words:
                if type(word) is ToolCallPiece:
                    if word.index not in calls:
                        if blocks:
                            frames.append(eventstream.event("contentBlockStop", {"contentBlockIndex": blocks - 1}))
                        calls[word.index], blocks = blocks, blocks + 1
                        frames.append(eventstream.event("contentBlockStart", {
                            "start": {"toolUse": {"toolUseId": word.id or f"tooluse_{word.index}", "name": word.name}},
                            "contentBlockIndex": calls[word.index]}))
                    if word.arguments:
                        frames.append(eventstream.event("contentBlockDelta", {
                            "delta": {"toolUse": {"input": word.arguments}}, "contentBlockIndex": calls[word.index]}))
                    continue
                if not text_open:
                    text_open, blocks = True, blocks + 1
                frames.append(eventstream.event("contentBlockDelta", {"delta": {"text": word},
                                                                      "contentBlockIndex": blocks - 1}))
            yield b"".join(frames)
    except StreamFailure as exc:  # the answer failed mid-way: end with the stream's own error
        yield eventstream.exception("modelStreamErrorException", answer_error(exc).message)
        return
    yield eventstream.event("contentBlockStop", {"contentBlockIndex": max(blocks - 1, 0)})
    yield eventstream.event("messageStop", {"stopReason": _stop_reason(stream),
                                            "additionalModelResponseFields": _extra(persona, stream)})
    yield eventstream.event("metadata", {"usage": _usage(input_tokens, stream.tokens),
                                         "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)}})


async def converse_stream(request: Request) -> Response:
    """Converse, streamed as AWS event-stream messages"""
    persona, query, input_tokens = await _conversation(request)
    events = _converse_events(persona, query, input_tokens, server_state(request).settings.ping_interval)
    return StreamingResponse(events, media_type=eventstream.MEDIA_TYPE)


# -- invoke (the Anthropic Messages body) -------------------------------------------------------------------------

_UNSUPPORTED_BODIES = (
    "invoke accepts only the Anthropic Messages body that Bedrock's Claude models take (anthropic_version, "
    "max_tokens, messages); the Amazon Nova and Titan, Meta Llama, Mistral, Cohere, AI21 and DeepSeek body "
    "formats are not supported: use converse, which takes one format for every model."
)


async def _invocation(request: Request) -> tuple[Persona, Query, int]:
    raw = await read_body(request)
    try:
        body = anthropic.MessagesRequest.model_validate_json(raw)  # one pass for the body we do take
    except ValidationError as exc:
        data = parse_json(raw)  # raises the JSON errors
        if not isinstance(data, dict) or not ("anthropic_version" in data or "max_tokens" in data):
            raise APIError(400, _UNSUPPORTED_BODIES) from None
        raise from_validation_error(exc) from None
    persona = pick_persona(request)
    messages = body.to_messages()
    query = body.query(messages, server_state(request).settings)
    body.apply_tools(persona, query)
    return persona, query, anthropic.input_tokens(messages)


async def invoke(request: Request) -> Response:
    """Invoke a model with the Anthropic Messages body of Bedrock's Claude models"""
    persona, query, input_tokens = await _invocation(request)
    text, stream = await anthropic.answer_text(request, persona, query)
    return json_response(anthropic.message_json(persona, text, stream, input_tokens))


def _chunk(data: dict[str, Any]) -> bytes:
    return eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(data)).decode()})


async def _invoke_events(persona: Persona, query: Query, input_tokens: int,
                         ping_interval: float) -> AsyncIterator[bytes]:
    """Anthropic's stream events, each the base64 JSON of a `chunk` event, as Bedrock's Claude models send them."""
    started = time.monotonic()
    output_tokens = 0
    async for batch in anthropic.message_events(persona, query, input_tokens, ping_interval):
        frames = []
        for name, data in batch:
            if name == "error":
                frames.append(eventstream.exception("modelStreamErrorException", data["error"]["message"]))
            elif name == "message_delta":
                output_tokens = data["usage"]["output_tokens"]
                frames.append(_chunk(data))
            elif name == "message_stop":
                latency = int((time.monotonic() - started) * 1000)
                frames.append(_chunk({**data, "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": input_tokens, "outputTokenCount": output_tokens,
                    "invocationLatency": latency, "firstByteLatency": latency}}))
            elif name != "ping":  # Bedrock passes no keep-alives
                frames.append(_chunk(data))
        if frames:
            yield b"".join(frames)


async def invoke_stream(request: Request) -> Response:
    """Invoke a model, streamed as chunk events of Anthropic's stream"""
    persona, query, input_tokens = await _invocation(request)
    events = _invoke_events(persona, query, input_tokens, server_state(request).settings.ping_interval)
    return StreamingResponse(events, media_type=eventstream.MEDIA_TYPE,
                             headers={"X-Amzn-Bedrock-Content-Type": "application/json"})


def routes() -> list[Route]:
    # `:path`: a model id may be an ARN with slashes in it (boto3 escapes them; the server unescapes them).
    table = [
        ("/converse", converse),
        ("/converse-stream", converse_stream),
        ("/invoke", invoke),
        ("/invoke-with-response-stream", invoke_stream),
    ]
    return [Route(prefix + "/model/{model_id:path}" + suffix, endpoint, methods=["POST"])
            for prefix in ("", "/bedrock") for suffix, endpoint in table]
