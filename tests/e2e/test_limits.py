"""Bounded work per request: body size, fan-out, counts, and the HTTP connection itself (slow, malformed, huge
headers), against real server processes, on both HTTP parsers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ServerProcess, start_server_process

LIMIT = 1024
KEEP_ALIVE = 2.0
CHAT = "/v1/chat/completions"


def _persona(directory: Path) -> Path:
    path = directory / "quick.json"
    path.write_text(json.dumps({"name": "quick", "solvers": ["failure"],
                                "failure": {"answers": ["A short fixed answer."]}}))
    return path


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default limits."""
    tmp = tmp_path_factory.mktemp("limits-default")
    proc = start_server_process("--persona", str(_persona(tmp)), log_path=tmp / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    proc = start_server_process(
        "--persona", str(_persona(tmp)), "--max-body-size", "1KiB", "--header-timeout", "1",
        "--body-timeout", "2", "--keep-alive-timeout", str(KEEP_ALIVE), "--http", request.param,
        log_path=tmp / "server.log",
    )
    yield proc
    proc.stop()


def chat_body(**extra: object) -> dict[str, object]:
    return {"model": "quick", "messages": [{"role": "user", "content": "hi"}], **extra}


def raw_exchange(server: ServerProcess, data: bytes, timeout: float = 15) -> tuple[bytes, float]:
    """Send raw bytes, read until the server closes the connection; the reply and the seconds it took."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply, time.monotonic() - started


def split_response(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_openai_error(status: int, body: bytes, expected: int) -> dict[str, object]:
    assert status == expected, body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error  # type: ignore[no-any-return]


# -- body size ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHAT, "/v1/completions", "/v1/responses", "/api/chat", "/api/generate"])
def test_a_body_over_the_limit_by_content_length_is_413_in_the_routes_format(server: ServerProcess,
                                                                             path: str) -> None:
    body = json.dumps(chat_body(prompt="x" * 2000, input="x", filler="y" * LIMIT)).encode()
    response = httpx.post(server.base_url + path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["connection"] == "close"
    if path.startswith("/api/"):
        assert set(response.json()) == {"error"} and "1024 bytes" in response.json()["error"]
    else:
        error = assert_openai_error(413, response.content, 413)
        assert error["code"] == "request_too_large"


@pytest.mark.parametrize("path", [CHAT, "/api/chat"])
def test_a_huge_content_length_is_refused_before_the_body_is_sent(server: ServerProcess, path: str) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n"
    reply, took = raw_exchange(server, head.encode())  # and not one byte of the body
    status, headers, _ = split_response(reply)
    assert status == 413 and headers["connection"] == "close"
    assert took < 5  # answered at once, not after a body timeout


@pytest.mark.parametrize("path", [CHAT, "/api/chat"])
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(server: ServerProcess, path: str) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(head.encode())
        reply = b""
        sent = 0
        for _ in range(64):  # up to 16 KiB, 256 bytes at a time, looking for the answer between chunks
            sock.sendall(b"100\r\n" + b" " * 256 + b"\r\n")
            sent += 256
            sock.settimeout(0.05)
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(15)
        while chunk := sock.recv(65536):
            reply += chunk
    status, _, body = split_response(reply)
    assert status == 413, reply
    assert sent <= 8 * LIMIT  # refused while the client was still sending, long before its 16 KiB
    error = json.loads(body)["error"]
    assert ("1024 bytes" in error) if path.startswith("/api/") else error["code"] == "request_too_large"


def test_a_body_within_the_limit_is_answered(server: ServerProcess) -> None:
    response = httpx.post(server.base_url + CHAT, json=chat_body(filler="y" * 600))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "A short fixed answer."


# -- counts ---------------------------------------------------------------------------------------------------


def test_the_fan_out_request_is_refused_at_once(roomy: ServerProcess) -> None:
    # The adversarial request: 10,000 prompts x n=16 (a 250 KB body, within the default 4 MiB).
    body = {"model": "quick", "prompt": ["what is a lighthouse"] * 10_000, "n": 16}
    started = time.monotonic()
    response = httpx.post(roomy.base_url + "/v1/completions", json=body, timeout=30)
    assert assert_openai_error(response.status_code, response.content, 400)["param"] == "n"
    body["n"] = 1
    response = httpx.post(roomy.base_url + "/v1/completions", json=body, timeout=30)
    error = assert_openai_error(response.status_code, response.content, 400)
    assert error["param"] == "prompt" and "32" in str(error["message"])
    assert time.monotonic() - started < 10
    assert httpx.get(roomy.base_url + "/health").status_code == 200


@pytest.mark.parametrize(("prompts", "n", "param"), [(5, 8, "n"), (33, 1, "prompt"), (2, 17, "n")])
def test_prompts_times_n_beyond_32_is_400_naming_the_field(server: ServerProcess, prompts: int, n: int,
                                                           param: str) -> None:
    body = {"model": "quick", "prompt": ["q"] * prompts, "n": n}
    response = httpx.post(server.base_url + "/v1/completions", json=body)
    error = assert_openai_error(response.status_code, response.content, 400)
    assert error["param"] == param


def test_32_choices_are_all_answered(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model="quick", prompt=["q"] * 4, n=8)
    assert [choice.index for choice in completion.choices] == list(range(32))
    assert {choice.text for choice in completion.choices} == {"A short fixed answer."}


def test_n_above_8_is_400(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="quick", messages=[{"role": "user", "content": "hi"}], n=9)
    assert raised.value.body["param"] == "n"  # type: ignore[index]
    assert len(client.chat.completions.create(model="quick", messages=[{"role": "user", "content": "hi"}],
                                              n=8).choices) == 8


STOP5 = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(("path", "body"), [
    (CHAT, chat_body(stop=STOP5)),
    ("/v1/completions", {"model": "quick", "prompt": "hi", "stop": STOP5}),
    (CHAT, chat_body(stop=["x" * 257])),
])
def test_more_than_4_stop_sequences_or_a_long_one_is_400(server: ServerProcess, path: str,
                                                         body: dict[str, object]) -> None:
    response = httpx.post(server.base_url + path, json=body)
    error = assert_openai_error(response.status_code, response.content, 400)
    assert str(error["param"]).startswith("stop")
    ok = dict(body, stop=STOP5[:4])
    assert httpx.post(server.base_url + path, json=ok).status_code == 200


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_ollama_options_stop_is_bounded_too(server: ServerProcess, path: str) -> None:
    body = {"model": "quick", "stream": False, "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
    response = httpx.post(server.base_url + path, json=dict(body, options={"stop": STOP5}))
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and "stop" in response.json()["error"]
    assert httpx.post(server.base_url + path, json=dict(body, options={"stop": STOP5[:4]})).status_code == 200


def test_messages_and_user_are_bounded(roomy: ServerProcess) -> None:
    many = [{"role": "user", "content": "hi"}] * 2001
    response = httpx.post(roomy.base_url + CHAT, json={"model": "quick", "messages": many})
    assert str(assert_openai_error(response.status_code, response.content, 400)["param"]).startswith("messages")
    response = httpx.post(roomy.base_url + "/api/chat", json={"model": "quick", "messages": many, "stream": False})
    assert response.status_code == 400 and "messages" in response.json()["error"]
    response = httpx.post(roomy.base_url + "/v1/responses", json={"model": "quick", "input": many})
    assert str(assert_openai_error(response.status_code, response.content, 400)["param"]).startswith("input")
    response = httpx.post(roomy.base_url + CHAT, json=chat_body(user="u" * 257))
    assert assert_openai_error(response.status_code, response.content, 400)["param"] == "user"
    assert httpx.post(roomy.base_url + CHAT, json={"model": "quick", "messages": many[:2000]}).status_code == 200


# -- the connection: slow, malformed, huge --------------------------------------------------------------------


def test_half_the_headers_then_silence_is_disconnected(server: ServerProcess) -> None:
    reply, took = raw_exchange(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    status, _, body = split_response(reply)
    assert assert_openai_error(status, body, 408)["code"] == "request_timeout"
    assert took < 10


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server: ServerProcess) -> None:
    reply, took = raw_exchange(server, b"")
    assert reply == b""  # there was no request to answer (a browser's idle preconnect, say)
    assert took < 10


def test_half_the_body_then_silence_is_disconnected(server: ServerProcess) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n"
    reply, took = raw_exchange(server, head + b'{"messages": [')
    assert reply == b""  # no answer: the handler saw the client go
    assert took < 10
    assert httpx.post(server.base_url + CHAT, json=chat_body()).status_code == 200


def test_a_slow_but_steady_keep_alive_client_is_served(server: ServerProcess) -> None:
    # Requests that arrive whole, with pauses between them longer than the header timeout, are fine.
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(2):
            assert client.post(CHAT, json=chat_body()).status_code == 200
            time.sleep(1.5)


def _health(sock: socket.socket) -> int:
    """One `GET /health` on an open connection: the status (the body read by its Content-Length)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        reply += chunk
    status, headers, body = split_response(reply)
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return status


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        assert _health(sock) == 200
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, no answer to nothing
        idle = time.monotonic() - answered
    assert KEEP_ALIVE - 0.2 < idle < KEEP_ALIVE + 5


def test_a_busy_connection_outlives_the_keep_alive_timeout(server: ServerProcess) -> None:
    # Requests every 0.6 s for twice the timeout: the connection is never idle for the whole of it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        began = time.monotonic()
        while time.monotonic() - began < 2 * KEEP_ALIVE:
            assert _health(sock) == 200
            time.sleep(0.6)
        assert _health(sock) == 200


@pytest.mark.parametrize("data", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01"])
def test_malformed_http_gets_a_json_400(server: ServerProcess, data: bytes) -> None:
    reply, _ = raw_exchange(server, data)
    status, headers, body = split_response(reply)
    assert headers["content-type"] == "application/json"
    assert assert_openai_error(status, body, 400)["type"] == "invalid_request_error"


@pytest.mark.parametrize("whole", [True, False])
def test_headers_beyond_the_limit_get_431(server: ServerProcess, whole: bool) -> None:
    huge = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"a" * 40_000 + (b"\r\n\r\n" if whole else b"")
    if whole:
        reply, _ = raw_exchange(server, huge)
        status, _, body = split_response(reply)
        assert assert_openai_error(status, body, 431)["code"] == "request_header_fields_too_large"
        return
    # In pieces: the bound holds for headers that never end, too.
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        for start in range(0, len(huge), 4096):
            try:
                sock.sendall(huge[start:start + 4096])
            except OSError:
                break
            time.sleep(0.01)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    status, _, body = split_response(reply)
    assert assert_openai_error(status, body, 431)["code"] == "request_header_fields_too_large"
