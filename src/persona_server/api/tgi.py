"""Hugging Face Text Generation Inference: `POST /generate`, `/generate_stream`, `POST /` and `GET /info`, also
under `/tgi/`, so `huggingface_hub.InferenceClient(base_url="http://127.0.0.1:8337")` works.

A TGI server serves one model: the default persona answers, unless the body's `model` (our extension) or the
path names another (`/tgi/models/{model}/generate`, or `InferenceClient(base_url=".../tgi/models/Name")`, which
posts to `/tgi/models/Name`). A stream is SSE of token events, the last one with `generated_text` and
`details`; `finish_reason` is `eos_token`, `length` or `stop_sequence`. A token is one of our word-sized tokens:
its `id` is its position and its `logprob` 0, as personas have no vocabulary and no probabilities.

Errors are TGI's `{"error", "error_type"}`; an invalid request is 422 (`validation`), as TGI answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from persona_server import __version__
from persona_server.api.context import json_response, read_model, server_state
from persona_server.api.errors import APIError, answer_error, json_error, register_error_format
from persona_server.api.streaming import (
    SSE_HEADERS,
    SSE_PING,
    StreamFailure,
    sse_event,
    stop_reason,
    unless_disconnected,
    with_pings,
)
from persona_server.chain import AnswerStream
from persona_server.persona import Persona
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.text import count_tokens, tokenize

MAX_STOP_SEQUENCES = 4  # TGI's default --max-stop-sequences
_ERROR_TYPES = {400: "validation", 401: "authentication", 403: "authentication", 404: "not_found",
                413: "validation", 422: "validation", 429: "overloaded"}
_ANSWER_CODES = frozenset({"no_answer", "solver_failed"})


# For /openapi.json (api/routes.py).
ERROR_SCHEMA = {"type": "object", "required": ["error", "error_type"],
                "properties": {"error": {"type": "string"}, "error_type": {"type": "string"}}}


def tgi_error(error: APIError) -> Response:
    status = 422 if error.status == 400 else error.status  # TGI rejects every invalid request with 422
    # An answer that failed or never came is the generation's fault, not the request's (answer_error).
    kind = "generation" if error.code in _ANSWER_CODES else _ERROR_TYPES.get(status, "generation")
    body = {"error": error.message, "error_type": kind}
    return json_error(body, APIError(status, error.message))


register_error_format(tgi_error, paths=("/generate", "/generate_stream", "/info", "/tgi"), prefixes=("/tgi/",),
                      post_paths=("/",))


def _refuse(field: str, why: str) -> APIError:
    return APIError(422, f"Input validation error: `{field}` is not supported: {why}", param=field)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TGIParameters(_Body):
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Field(gt=0)] | None = None
    top_p: Annotated[float, Field(gt=0, lt=1)] | None = None
    details: bool = False
    return_full_text: bool | None = None
    seed: int | None = None
    # Sampling knobs an LLM solver has no parameter for; harmless to accept.
    top_k: Annotated[int, Field(gt=0)] | None = None
    do_sample: bool | None = None
    repetition_penalty: Annotated[float, Field(gt=0)] | None = None
    frequency_penalty: float | None = None
    typical_p: Annotated[float, Field(gt=0, lt=1)] | None = None
    truncate: int | None = None
    watermark: bool | None = None
    # Refused when used: they promise what a persona cannot give.
    best_of: Annotated[int, Field(ge=1)] | None = None
    decoder_input_details: bool | None = None
    top_n_tokens: int | None = None
    grammar: dict[str, Any] | None = None
    adapter_id: str | None = None

    def check(self) -> None:
        if self.best_of is not None and self.best_of > 1:
            raise _refuse("best_of", "a persona gives one answer")
        if self.decoder_input_details:
            raise _refuse("decoder_input_details", "personas have no token probabilities")
        if self.top_n_tokens:
            raise _refuse("top_n_tokens", "personas have no token probabilities")
        if self.grammar:
            raise _refuse("grammar", "a persona answers in text; it cannot follow a grammar")
        if self.adapter_id:
            raise _refuse("adapter_id", "personas have no adapters")


_NO_PARAMETERS = TGIParameters()


class TGIGenerateRequest(_Body):
    inputs: Annotated[str, Field(min_length=1)]
    parameters: TGIParameters | None = None
    stream: bool | None = False
    # Extensions: the persona, who is asking, and the language and units of the answer.
    model: str | None = None
    user: str | None = None
    lang: str | None = None
    units: Literal["metric", "imperial"] | None = None

    @property
    def params(self) -> TGIParameters:
        return self.parameters or _NO_PARAMETERS

    def query(self, settings: Settings) -> Query:
        p = self.params
        return Query(
            messages=[Message("user", self.inputs)],
            lang=self.lang or settings.lang,
            units=self.units or settings.units,
            max_tokens=p.max_new_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            stop=list(p.stop or []),
            user=self.user or None,
        )


def finish_reason(stream: AnswerStream) -> str:
    return stop_reason(stream, end="eos_token", length="length", stop_sequence="stop_sequence")


def _token(position: int, text: str, special: bool = False) -> dict[str, Any]:
    return {"id": position, "text": text, "logprob": 0.0, "special": special}


def _metadata(stream: AnswerStream) -> dict[str, Any]:
    return {"solver": stream.solver, "sources": [s.to_dict() for s in stream.sources]}


class _Generation:
    """One request being answered: the persona, its query and what the response needs besides the text."""

    def __init__(self, request: Request, body: TGIGenerateRequest) -> None:
        body.params.check()
        state = server_state(request)
        model = request.path_params.get("model") or body.model
        persona = state.catalog.for_model(model, strict=state.settings.strict_models)
        if persona is None:
            raise APIError(404, f"Model '{model}' not found")
        self.persona: Persona = persona
        self.body = body
        self.stream = persona.stream(body.query(state.settings))
        self.prefix = body.inputs if body.params.return_full_text else ""
        self.ping_interval = state.settings.ping_interval

    def output(self, text: str) -> dict[str, Any]:
        out: dict[str, Any] = {"generated_text": self.prefix + text}
        if self.body.params.details:
            out["details"] = {
                "finish_reason": finish_reason(self.stream),
                "generated_tokens": self.stream.tokens,
                "seed": self.body.params.seed,
                "prefill": [],
                "tokens": [_token(i, token) for i, token in enumerate(tokenize(text))],
            }
        out.update(_metadata(self.stream))
        return out

    async def events(self) -> AsyncIterator[bytes]:
        parts: list[str] = []
        position = 0
        try:
            async for piece in with_pings(self.stream, self.ping_interval):
                if piece is None:
                    yield SSE_PING
                    continue
                parts.append(piece)
                tokens = tokenize(piece) or [piece]
                yield b"".join(sse_event({"index": position + i, "token": _token(position + i, token),
                                          "generated_text": None, "details": None, "top_tokens": None})
                               for i, token in enumerate(tokens))
                position += len(tokens)
        except StreamFailure as exc:
            yield sse_event({"error": answer_error(exc).message, "error_type": "generation"})
            return
        # The end of the answer, as TGI's end-of-sequence token: special, and with no text of its own.
        yield sse_event({
            "index": position, "token": _token(position, "", special=True), "top_tokens": None,
            "generated_text": self.prefix + "".join(parts),
            "details": {"finish_reason": finish_reason(self.stream), "generated_tokens": self.stream.tokens,
                        "input_length": count_tokens(self.body.inputs), "seed": self.body.params.seed},
            **_metadata(self.stream),
        })


async def _whole(request: Request, answer: _Generation) -> dict[str, Any]:
    return answer.output(await unless_disconnected(request, answer.stream.text()))


def _streamed(answer: _Generation) -> Response:
    return StreamingResponse(answer.events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def generate(request: Request) -> Response:
    answer = _Generation(request, await read_model(request, TGIGenerateRequest))
    return json_response(await _whole(request, answer))


async def generate_stream(request: Request) -> Response:
    return _streamed(_Generation(request, await read_model(request, TGIGenerateRequest)))


async def compat_generate(request: Request) -> Response:
    """`POST /`: a stream when `stream` is true, else the answer in a list, as TGI (and the Inference API) do."""
    body = await read_model(request, TGIGenerateRequest)
    answer = _Generation(request, body)
    if body.stream:
        return _streamed(answer)
    return json_response([await _whole(request, answer)])


async def info(request: Request) -> Response:
    state = server_state(request)
    model = request.path_params.get("model")
    persona = state.catalog.for_model(model, strict=state.settings.strict_models)
    if persona is None:
        raise APIError(404, f"Model '{model}' not found")
    return json_response({
        "model_id": persona.name, "model_sha": None, "model_dtype": "persona", "model_device_type": "cpu",
        "model_pipeline_tag": "text-generation", "max_concurrent_requests": 1024, "max_best_of": 1,
        "max_stop_sequences": MAX_STOP_SEQUENCES, "max_input_tokens": None, "max_total_tokens": None,
        "validation_workers": 1, "max_client_batch_size": 1, "router": "persona-server",
        "version": __version__, "sha": None, "docker_label": None,
    })


def routes() -> list[Route]:
    routes = [Route("/", compat_generate, methods=["POST"])]
    for prefix in ("", "/tgi", "/tgi/models/{model}"):
        if prefix:
            routes.append(Route(prefix, compat_generate, methods=["POST"]))
        routes += [
            Route(prefix + "/generate", generate, methods=["POST"]),
            Route(prefix + "/generate_stream", generate_stream, methods=["POST"]),
            Route(prefix + "/info", info, methods=["GET"]),
        ]
    return routes
