"""uvicorn's HTTP protocols (httptools and h11) with the bounds a server facing unknown clients needs.

- A request's headers must arrive within `header_timeout` seconds of its first byte (or of the connection
  opening), and its body within `body_timeout` seconds of its headers; a client that sends half a request and
  stalls is disconnected (with a 408 when no answer has started). Time the server itself spends not reading
  (a pipelined request waiting its turn) does not count against the client.
- Headers larger than `max_header_size` get 431, whether they arrive whole or never end.
- Malformed HTTP gets a JSON 400 in OpenAI's error envelope instead of uvicorn's plain text.
- A handler can ask to have its task cancelled the moment the client goes away (`CONNECTION` in the scope, see
  `api.streaming.unless_disconnected`): the connection knows first, so no task or timer has to watch for it.

Timers are touched only when a request does not arrive whole in one read, so the common case costs nothing;
with httptools the keep-alive timeout between requests runs on one lazy timer per connection (`KeepAlive`)
instead of a timer made and cancelled for every request, as uvicorn does.
`configure(settings)` sets the bounds for the process; uvicorn is given the class by its import path
(`protocol_path`), which also works for `--workers` processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from persona_server.api.errors import APIError, openai_error_body
from persona_server.limits import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_HEADER, refuse

if TYPE_CHECKING:
    from persona_server.settings import Settings

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without its [standard] extra
    httptools = None


@dataclass(slots=True)
class ConnectionLimits:
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_header_size: int = DEFAULT_MAX_HEADER


LIMITS = ConnectionLimits()


def configure(settings: Settings) -> None:
    """Set this process's connection bounds from the server settings (before uvicorn accepts connections)."""
    LIMITS.header_timeout = settings.header_timeout
    LIMITS.body_timeout = settings.body_timeout
    LIMITS.max_header_size = settings.max_header_size


def protocol_path(http: str = "auto") -> str:
    """The `http=` argument for uvicorn: one of our classes by import path."""
    if http == "h11" or (http == "auto" and httptools is None):
        return f"{__name__}:BoundedH11Protocol"
    return f"{__name__}:BoundedHttpToolsProtocol"


def error_bytes(error: APIError) -> bytes:
    """A whole HTTP/1.1 response carrying `error` in OpenAI's envelope, closing the connection."""
    body = orjson.dumps(openai_error_body(error))
    reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (error.status, reason.get(error.status, b"Error")),
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        body,
    ])


def _headers_too_large() -> APIError:
    return refuse("header_size", 431, f"The request headers are larger than {LIMITS.max_header_size} bytes.")


class OneWrite:
    """The connection's transport, sending what is written in one turn of the event loop in one write.

    uvicorn writes a response's status line and headers, then its body: two system calls for every small
    answer where one does (about a tenth of a small request's CPU time, see bench/README.md). The writes of a
    turn are joined and sent at its end; nothing waits longer than that.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# The scope key of the connection a request came on (httptools only), for `watch`.
CONNECTION = "persona_server.connection"


class KeepAlive:
    """uvicorn's keep-alive timeout of one connection, on a timer that is not re-made for every request.

    Stands in for uvicorn's `timeout_keep_alive_task` handle: uvicorn calls `cancel()` when the next request
    begins, which here only notes that the connection is busy. The one timer, when it fires, closes the
    connection if it has been idle for the whole timeout, and otherwise waits again for what is left of it; so a
    connection answering requests all the time sees it fire once per timeout, not once per request.
    """

    __slots__ = ("_handle", "_idle_since", "_protocol")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._handle: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None

    def idle(self) -> None:
        """The connection has answered its requests and waits for the next."""
        loop = self._protocol.loop
        self._idle_since = loop.time()
        if self._handle is None:
            self._handle = loop.call_later(self._protocol.timeout_keep_alive, self._check)

    def cancel(self) -> None:
        """uvicorn's word: the connection is busy again."""
        self._idle_since = None

    def stop(self) -> None:
        """The connection is gone: drop the timer (and with it the reference to the connection)."""
        self._idle_since = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if self._idle_since is None:
            return  # busy: the next idle() starts the timer again
        protocol = self._protocol
        left = self._idle_since + protocol.timeout_keep_alive - protocol.loop.time()
        if left > 0:
            self._handle = protocol.loop.call_later(left, self._check)
        else:
            protocol.timeout_keep_alive_handler()


# What the connection waits for: nothing (answering, or idle between requests: uvicorn's keep-alive timeout
# applies), the first byte of its first request, the rest of a request's headers, its body.
_IDLE, _CONNECTED, _HEADERS, _BODY = 0, 1, 2, 3


class _Deadlines:
    """What both protocols share: the phase of the request being read, and one timer for it."""

    # Attributes of uvicorn's protocols this mixin uses.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: Any
    cycle: Any
    logger: Any

    _phase = _CONNECTED
    _armed = _IDLE  # the phase the timer runs for
    _timer: asyncio.TimerHandle | None = None
    # The task to cancel when the client goes away before its answer (see `watch`), and whether it went.
    watched: asyncio.Task[Any] | None = None
    gone = False

    def watch(self, task: asyncio.Task[Any] | None) -> None:
        """Cancel `task` if the connection is lost from now on (None: no longer); `gone` then tells it why."""
        self.watched = task

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self.transport = OneWrite(transport, self.loop)  # type: ignore[assignment]
        self._sync_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.gone = True
        super().connection_lost(exc)  # type: ignore[misc]
        task, self.watched = self.watched, None
        if task is not None:
            task.cancel()

    def _sync_deadline(self) -> None:
        phase = self._phase
        if phase == self._armed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = phase
        if phase == _HEADERS or phase == _CONNECTED:
            self._timer = self.loop.call_later(LIMITS.header_timeout, self._expired)
        elif phase == _BODY:
            self._timer = self.loop.call_later(LIMITS.body_timeout, self._expired)

    def _stop_deadline(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self.flow.read_paused or (self._phase == _HEADERS and answering):
            # We stopped reading (a full buffer), or the client pipelined its next request while we answer
            # the last one: the wait is ours, not the client's.
            self._armed = _IDLE
            self._sync_deadline()
            return
        if self._phase == _HEADERS:
            self.transport.write(error_bytes(refuse("header_timeout", 408, f"The request headers did not arrive "
                                                    f"within {LIMITS.header_timeout:g} s.")))
        elif self._phase == _CONNECTED:
            pass  # no request began (a browser's idle preconnect, say): nothing to answer or count
        else:
            # The handler is waiting for the body: closing tells it the client is gone.
            refuse("body_timeout", 408, f"The request body did not arrive within {LIMITS.body_timeout:g} s.")
        self.transport.close()

    def _reject(self, error: APIError) -> None:
        self.transport.write(error_bytes(error))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._reject(APIError(400, msg, code="invalid_http_request"))


if httptools is not None:

    class BoundedHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
        _header_bytes = 0  # bytes of the current request's headers, counted by the parser callbacks
        _waiting_bytes = 0  # bytes received while its headers were incomplete

        def data_received(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            before = self._phase
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                if self._header_bytes > LIMITS.max_header_size:
                    self._reject(_headers_too_large())
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            if self._phase == _HEADERS:
                # httptools buffers a header it has not finished without telling us: count what it was fed.
                self._waiting_bytes = self._waiting_bytes + len(data) if before == _HEADERS else len(data)
                if self._waiting_bytes > LIMITS.max_header_size:
                    self._reject(_headers_too_large())
                    return
            if self._phase != self._armed:
                self._sync_deadline()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[CONNECTION] = self  # type: ignore[literal-required]
            self._phase = _HEADERS
            self._header_bytes = 0

        def on_url(self, url: bytes) -> None:
            self.url += url
            self._header_bytes += len(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_bytes += len(name) + len(value) + 4
            if self._header_bytes > LIMITS.max_header_size:
                raise ValueError("headers too large")  # httptools turns it into HttpParserError
            name = name.lower()
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            self.headers.append((name, value))

        def on_headers_complete(self) -> None:
            self._phase = _BODY
            self._waiting_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._phase = _IDLE
            super().on_message_complete()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._keep_alive = KeepAlive(self)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self._keep_alive.stop()

        def on_response_complete(self) -> None:
            if self.pipeline or self.transport.is_closing():
                super().on_response_complete()  # uvicorn starts the pipelined request (or nothing is left to do)
                return
            # What uvicorn does when no request waits, with `KeepAlive` for its per-request keep-alive timer.
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self.flow.resume_reading()  # unpause reads if needed
            self._keep_alive.idle()
            self.timeout_keep_alive_task = self._keep_alive  # type: ignore[assignment]


class BoundedH11Protocol(_Deadlines, H11Protocol):
    """h11 bounds headers that arrive in pieces itself (`h11_max_incomplete_event_size`, a 400); this adds the
    deadlines, and the same 431 as httptools for headers that arrive whole."""

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            pending = self.conn.trailing_data[0] + data
            limit = LIMITS.max_header_size
            if len(pending) > limit and pending.find(b"\r\n\r\n", 0, limit + 4) < 0:
                self._reject(_headers_too_large())
                return
        super().data_received(data)
        self._update_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_phase()

    def _update_phase(self) -> None:
        if self.transport.is_closing():
            self._stop_deadline()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._phase = _BODY
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._phase = _HEADERS
        else:
            self._phase = _IDLE
        self._sync_deadline()
