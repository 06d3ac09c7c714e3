"""Streaming helpers shared by the wire protocols: SSE framing, keep-alive pings, and errors mid-stream.

Once a stream has begun, its status line is sent: an answer that breaks off (`AnswerFailed`) or never comes
(`NoAnswer`) ends the stream with an error in the protocol's own format instead, which each client raises on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from persona_server import cleanup
from persona_server.api.errors import APIError, answer_error, openai_error_body
from persona_server.chain import AnswerFailed, NoAnswer
from persona_server.deadlines import Deadline
from persona_server.http_protocol import CONNECTION
from persona_server.text import split_pieces
from persona_server.tooling import ToolCallPiece

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_DONE = b"data: [DONE]\n\n"
# A comment line: SSE clients ignore it, proxies and load balancers see traffic on an idle stream.
SSE_PING = b": ping\n\n"


def sse_event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def sse_named_event(event: str, data: Any) -> bytes:
    """An SSE event with a name (`event: X`), as the vendor protocols' streams use."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Finished(Protocol):
    """What ended an answer (an AnswerStream, once it has ended)."""

    @property
    def finish_reason(self) -> str: ...

    @property
    def stop_sequence(self) -> str | None: ...


def stop_reason(answer: Finished, *, end: str, length: str, stop_sequence: str) -> str:
    """An answer's stop reason in a vendor's words: cut by the token limit, by a stop sequence, or complete."""
    if answer.finish_reason == "length":
        return length
    return stop_sequence if answer.stop_sequence is not None else end


# What a stream's answer may end with instead of its last piece.
StreamFailure = (AnswerFailed, NoAnswer)


def sse_error(exc: AnswerFailed | NoAnswer) -> bytes:
    """OpenAI chat/completions streams: an event whose data has `error` (the `openai` client raises APIError on
    it), then the end marker."""
    return sse_event(openai_error_body(answer_error(exc))) + SSE_DONE


def ndjson_error(exc: AnswerFailed | NoAnswer) -> bytes:
    """Ollama streams: a line `{"error": "..."}` (the `ollama` client raises ResponseError on it)."""
    return orjson.dumps({"error": answer_error(exc).message}) + b"\n"


def responses_error(exc: AnswerFailed | NoAnswer) -> dict[str, str]:
    """The Responses API's `error` of a `response.failed` response object."""
    error: APIError = answer_error(exc)
    return {"code": "server_error" if error.status >= 500 else (error.code or "server_error"),
            "message": error.message}


async def ending_cleanly(events: AsyncIterator[bytes],
                         render: Callable[[AnswerFailed | NoAnswer], bytes]) -> AsyncIterator[bytes]:
    """A protocol's stream, ended by `render(failure)` (its error event and end marker) when the answer fails."""
    try:
        async for event in events:
            yield event
    except StreamFailure as exc:
        yield render(exc)
    finally:
        # Closed early (a client that left) by a task that is being cancelled itself: shield the inner close.
        # One that ran to its end has no frame left, and nothing to close.
        if getattr(events, "ag_frame", None) is not None:
            await cleanup.shielded(events.aclose())  # type: ignore[attr-defined]


async def with_pings(source: AsyncIterator[T], interval: float) -> AsyncIterator[T | None]:
    """Yield the source's items, and None whenever `interval` seconds pass without one.

    Each item is awaited in its own task so waiting can time out without cancelling the source; closing this
    generator (a client that went away) cancels the pending item once and closes the source, shielded: the
    streaming task that closes it is being cancelled itself (see `cleanup`).
    """
    iterator = aiter(source)
    pending: asyncio.Future[T] | None = None
    exhausted = False
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                exhausted = True
                return
            yield item
    finally:
        if not exhausted:
            await cleanup.shielded(_close(pending, iterator))


async def _close(pending: asyncio.Future[Any] | None, iterator: AsyncIterator[Any]) -> None:
    if pending is not None:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def word_chunks(answer: AsyncIterator[str | ToolCallPiece],
                      interval: float) -> AsyncIterator[list[str | ToolCallPiece] | None]:
    """An answer's pieces split into word-sized chunks, or None when `interval` passes without one (time for a
    keep-alive). A whole answer of a non-streaming solver thus goes out at once, word by word, as an LLM's
    tokens would; an LLM's tokens pass as they are, and so do tool calls (which only requests offering tools
    get, from protocols that render them)."""
    pieces = with_pings(answer, interval)
    try:
        async for piece in pieces:
            if piece is None:
                yield None
            elif type(piece) is str:
                yield split_pieces(piece)  # type: ignore[misc]
            else:
                yield [piece]
    finally:
        await pieces.aclose()


class AnswerStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its body: Starlette leaves a body abandoned by a client that left
    suspended at a `yield`, for the garbage collector to close some time later, and with it the answer's
    upstream requests."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.body_iterator
            # A body that ran to its end, or out through an exception, has no frame left: nothing to close.
            if getattr(body, "ag_frame", None) is not None:
                await cleanup.shielded(body.aclose())  # type: ignore[attr-defined]


# The scope key under which the front door (api/front_door.py) keeps the task handling the request.
REQUEST_TASK = "persona_server.task"


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def unless_disconnected(request: Request, work: Awaitable[T], grace: float = 0.05) -> T:
    """Await `work`, cancelling it if the client disconnects first (Starlette only does that for streams).

    Our HTTP protocol (persona_server.http_protocol) cancels the task itself when the connection is lost. Behind
    another server, a task watching the connection is started for answers slower than `grace` seconds.
    """
    # The front door already looked the task up (a tenth of a microsecond less per request).
    current = request.scope.get(REQUEST_TASK) or asyncio.current_task()
    assert current is not None
    connection = request.scope.get(CONNECTION)
    if connection is None:
        return await _watched(request, current, work, grace)
    if connection.gone:
        _discard(work)
        raise ClientGone
    outer = connection.watched  # a watch this one is nested in, restored after
    connection.watch(current)
    try:
        return await work
    except asyncio.CancelledError:
        if connection.gone:
            current.uncancel()
            raise ClientGone from None
        raise
    finally:
        connection.watch(outer)


def _discard(work: Awaitable[Any]) -> None:
    close = getattr(work, "close", None)
    if close is not None:
        close()  # a coroutine never started: no "never awaited" warning


async def _watched(request: Request, current: asyncio.Task[Any], work: Awaitable[T], grace: float) -> T:
    watcher: asyncio.Task[None] | None = None

    def on_disconnect(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            current.cancel()

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(_disconnected(request))
        watcher.add_done_callback(on_disconnect)

    handle = Deadline(grace, watch)
    try:
        return await work
    except asyncio.CancelledError:
        if watcher is not None and watcher.done() and not watcher.cancelled():
            current.uncancel()
            raise ClientGone from None
        raise
    finally:
        handle.cancel()
        if watcher is not None:
            watcher.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next message the server sends us is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
