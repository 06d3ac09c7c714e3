"""A scripted OpenAI-compatible chat upstream on 127.0.0.1, for testing the LLM solvers without a model.

Each request to `/v1/chat/completions` is answered by the next `Reply` scripted for its `model` (or for any
model), else by `default`. A reply streams its tokens with a controllable delay, or fails in a chosen way (an
HTTP status, malformed JSON, a hang, an empty answer, a dropped connection, a stream that stops without
finishing), or asks for tool calls. Every request is recorded (body, headers, arrival time) together with the
moment each token was written, so tests can compare the upstream's timing with what a client received.

    with Upstream() as upstream:
        upstream.script(Reply(tokens=["Hel", "lo"], delay=0.05))
        ...  # point a solver at upstream.base_url
        upstream.requests[0].body["messages"]
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANY = "*"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    tokens: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds between tokens
    first_delay: float = 0.0  # seconds before the first token
    status: int = 200
    error: str = "upstream exploded"
    hang: bool = False  # accept the request, then send nothing at all
    hang_after: int | None = None  # stream this many tokens, then go silent
    bad_json: bool = False  # a data line that is not JSON
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (function name, JSON arguments)
    stream: bool | None = None  # None: as the request asks; False: one JSON body even to a streaming request
    blank_lines: bool = True  # False: leave out the blank line between SSE events
    drop_after: int | None = None  # stream this many tokens, then drop the connection mid-body
    unfinished: bool = False  # end the stream cleanly after the tokens, but with no finish_reason and no [DONE]
    forever: bool = False  # repeat the tokens without end (an upstream that never stops)


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float  # time.monotonic()
    token_times: list[float] = field(default_factory=list)  # when each token was written
    finished: float | None = None
    disconnected: bool = False  # the client went away before the end
    closed_at: float | None = None  # when the upstream saw that (time.monotonic())


class Upstream:
    """The scripted server, run by uvicorn in a background thread of the test process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.default = Reply(tokens=["I", " am", " the", " default", " upstream", "."])
        self.requests: list[Recorded] = []
        self._scripts: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()
        # Embeddings (OpenAI's /v1/embeddings, Ollama's /api/embed): `scripted_vector` of each input, or an error
        # that quotes the request's Authorization header, as OpenAI quotes a wrong key.
        self.embedding_width = 8
        self.embedding_status = 200
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/api/embed", self._embeddings, methods=["POST"]),
        ])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="upstream", daemon=True)

    @property
    def open_connections(self) -> int:
        """Client connections this upstream holds open right now (in use or idle keep-alive)."""
        return len(self._server.server_state.connections)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply, model: str = ANY) -> None:
        with self._lock:
            self._scripts[model].extend(replies)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def _next(self, model: str) -> Reply:
        with self._lock:
            for key in (model, ANY):
                if self._scripts[key]:
                    return self._scripts[key].popleft()
        return self.default

    def __enter__(self) -> Upstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    # -- handlers -----------------------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(Recorded(request.url.path, body, dict(request.headers), time.monotonic()))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if self.embedding_status >= 400:
            quoted = request.headers.get("authorization", "")
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {quoted}", "type": "invalid",
                                           "param": None, "code": None}}, status_code=self.embedding_status)
        vectors = [scripted_vector(text, self.embedding_width) for text in texts]
        if request.url.path == "/api/embed":
            return JSONResponse({"model": body["model"], "embeddings": vectors, "prompt_eval_count": len(texts)})
        # Out of order on purpose: clients must place rows by `index`.
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)][::-1]
        return JSONResponse({"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}})

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        record = Recorded(request.url.path, body, dict(request.headers), time.monotonic())
        self.requests.append(record)
        reply = self._next(str(body.get("model", "")))
        if reply.status >= 400:
            return JSONResponse({"error": {"message": reply.error, "type": "server_error", "param": None,
                                           "code": None}}, status_code=reply.status)
        streaming = bool(body.get("stream")) if reply.stream is None else reply.stream
        if not streaming:
            if reply.hang:
                await asyncio.sleep(3600)
            record.token_times = [time.monotonic()] * len(reply.tokens)
            record.finished = time.monotonic()
            return JSONResponse(_whole(reply))
        return StreamingResponse(self._events(reply, record), media_type="text/event-stream")

    async def _events(self, reply: Reply, record: Recorded) -> AsyncIterator[bytes]:
        try:
            async for event in self._script_events(reply, record):
                yield event
        except (asyncio.CancelledError, GeneratorExit, OSError):
            record.disconnected = True
            record.closed_at = time.monotonic()
            raise

    async def _script_events(self, reply: Reply, record: Recorded) -> AsyncIterator[bytes]:
        end = b"\n\n" if reply.blank_lines else b"\n"
        if reply.hang:
            await asyncio.sleep(3600)
        yield b"data: " + orjson.dumps(_chunk({"role": "assistant", "content": ""})) + end
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        for index, token in enumerate(_tokens(reply)):
            if reply.hang_after is not None and index >= reply.hang_after:
                await asyncio.sleep(3600)
            if reply.drop_after is not None and index >= reply.drop_after:
                # Raised after the headers went out, so uvicorn aborts the connection: no final chunk.
                raise DroppedOnPurpose
            if index and reply.delay:
                await asyncio.sleep(reply.delay)
            record.token_times.append(time.monotonic())
            yield b"data: " + orjson.dumps(_chunk({"content": token})) + end
        if reply.unfinished:
            record.finished = time.monotonic()
            return
        if reply.bad_json:
            yield b"data: {this is not json" + end
        for index, (name, arguments) in enumerate(reply.tool_calls):
            # Split like real servers do: id and name first, the arguments in two halves.
            half = len(arguments) // 2
            first = {"index": index, "id": f"call_{index}", "type": "function",
                     "function": {"name": name, "arguments": arguments[:half]}}
            yield b"data: " + orjson.dumps(_chunk({"tool_calls": [first]})) + end
            rest = {"index": index, "function": {"arguments": arguments[half:]}}
            yield b"data: " + orjson.dumps(_chunk({"tool_calls": [rest]})) + end
        finish = "tool_calls" if reply.tool_calls else "stop"
        yield b"data: " + orjson.dumps(_chunk({}, finish)) + end
        record.finished = time.monotonic()
        yield b"data: [DONE]" + end


def scripted_vector(text: str, width: int) -> list[float]:
    """The upstream's embedding of `text`: fixed by its hash, not of unit length (so normalising shows)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [float(digest[i % len(digest)]) - 127.5 for i in range(width)]


class DroppedOnPurpose(Exception):
    """Ends a scripted stream by dropping its connection (`Reply.drop_after`)."""


def _tokens(reply: Reply) -> Iterator[str]:
    if not reply.forever:
        yield from reply.tokens
        return
    while True:
        yield from reply.tokens or [" more"]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _whole(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.tokens)}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}]}
