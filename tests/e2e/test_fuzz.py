"""Fuzzing a real server: schemathesis on every route of `/openapi.json`, and hostile bodies on every POST route.

The promise: no input makes the server fail (no 5xx), every error is JSON in the route's own format (OpenAI's
`{"error": {...}}`, Ollama's `{"error": "..."}` under `/api/`, Anthropic's, Gemini's, Bedrock's, Cohere's and
TGI's on theirs), and
the server still answers afterwards. The fast
persona (the failure solver only) takes most of the load; the default chain gets a shorter run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from persona_server.api import anthropic, bedrock, gemini
from tests.conftest import ServerProcess, start_server_process

# Examples per operation and mode (schemathesis), and hostile bodies (hypothesis), per server.
SCHEMA_EXAMPLES = 60
HOSTILE_EXAMPLES = 1500
SHORT_RUN = 8


def fuzz_settings(examples: int) -> settings:
    # Derandomized: the same inputs on every run, so a failure reproduces (and CI stays stable).
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    persona = root / "Fuzz.json"
    persona.write_text(json.dumps({"name": "Fuzz", "solvers": ["ovos-solver-failure-plugin"]}))
    server = start_server_process("--persona", str(persona), log_path=root / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory, isolated_cache: Path) -> Iterator[ServerProcess]:
    """The built-in persona, whose chain runs every offline solver."""
    server = start_server_process(log_path=tmp_path_factory.mktemp("fuzz-default") / "server.log")
    yield server
    server.stop()


def is_cohere_path(path: str) -> bool:
    return path in ("/v1/chat", "/v1/generate") or path.startswith(("/v2/", "/cohere/"))


def is_tgi_path(path: str, method: str) -> bool:
    return (path in ("/generate", "/generate_stream", "/info", "/tgi") or path.startswith("/tgi/")
            or (path in ("/", "/embed") and method == "POST"))


def check_response(path: str, status: int, content_type: str, content: bytes, where: str,
                   method: str = "POST") -> None:
    """No 5xx, and an error body in the route's own format."""
    assert status < 500, f"{where}: {status} {content[:500]!r}"
    if status < 400:
        return
    assert content_type.startswith("application/json"), f"{where}: {status} {content[:300]!r}"
    body = json.loads(content)
    path = unquote(path)  # as the server routes it
    if is_cohere_path(path):
        assert isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str), where
    elif is_tgi_path(path, method):
        assert isinstance(body, dict) and set(body) == {"error", "error_type"}, where
        assert isinstance(body["error"], str) and isinstance(body["error_type"], str), where
    elif path.startswith(anthropic.PREFIXES):
        assert isinstance(body, dict) and body.get("type") == "error", where
        assert set(body) == {"type", "error"} and set(body["error"]) == {"type", "message"}, where
    elif gemini.is_gemini_path(path):
        assert isinstance(body, dict) and set(body) == {"error"}, where
        assert set(body["error"]) == {"code", "message", "status"} and body["error"]["code"] == status, where
    elif path.startswith(bedrock.PREFIXES):
        assert isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str), where
    elif path == "/api" or path.startswith("/api/"):
        assert isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str), where
    else:
        assert isinstance(body, dict) and set(body) == {"error"}, where
        assert set(body["error"]) == {"message", "type", "param", "code"}, where
        assert isinstance(body["error"]["message"], str), where


def assert_healthy(server: ServerProcess) -> None:
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200
    reply = httpx.post(server.base_url + "/v1/chat/completions", timeout=30,
                       json={"messages": [{"role": "user", "content": "tell me a joke"}]})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"].strip()
    assert "Traceback" not in server.log(), server.log()[-3000:]


# -- schemathesis: every route from /openapi.json --------------------------------------------------------------


def run_schemathesis(server: ServerProcess, examples: int) -> int:
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    sent = 0
    operations: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.add(operation.label)
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @fuzz_settings(examples)
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            nonlocal sent
            response = case.call(base_url=server.base_url, timeout=30)
            sent += 1
            content_type = (response.headers.get("content-type") or [""])[0]
            check_response(case.formatted_path, response.status_code, content_type, response.content,
                           f"{case.method} {case.formatted_path} body={case.body!r:.300}", case.method)

        fuzz()
    paths = httpx.get(server.base_url + "/openapi.json").json()["paths"]
    documented = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    # schemathesis leaves out the schema's own URL.
    assert operations == documented - {"GET /openapi.json"}, "every route and method was fuzzed"
    return sent


def test_schemathesis_fuzzes_every_route(fast_server: ServerProcess) -> None:
    sent = run_schemathesis(fast_server, SCHEMA_EXAMPLES)
    assert sent >= 1000
    assert_healthy(fast_server)


def test_schemathesis_short_run_on_the_default_chain(default_server: ServerProcess) -> None:
    sent = run_schemathesis(default_server, SHORT_RUN)
    assert sent >= 150
    assert_healthy(default_server)


# -- hypothesis: hostile bodies on every POST route -----------------------------------------------------------

_FIELDS = ("model", "messages", "prompt", "input", "stream", "n", "max_tokens", "temperature", "options",
           "stop", "user", "lang", "units", "system", "instructions", "stream_options", "max_output_tokens")
_NASTY_TEXT = st.sampled_from([
    "\\ud800", "\\udfff", "a\\ud83d", "\\u0000", "\\u0000\\u0000x", "\\ud83d\\ude00", "\\\\", "\\u001f", "",
])
_NASTY_BYTES = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xf4\x90\x80\x80",
                                b"\xc0\xaf", b"\x80", b"\xe2\x82"])
_HUGE_NUMBERS = st.sampled_from(["1e999999", "-1e400", "123456789012345678901234567890123456789", "1E+309", "-0",
                                 "1e-400", "NaN", "Infinity", "9" * 5000, "0." + "1" * 5000, "-9223372036854775809"])


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20), _containers,
    max_leaves=12,
)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def hostile_body(draw: st.DrawFn, big: int) -> bytes:
    """Bytes a careless or hostile client might post; `big` bounds the size of the huge pieces."""
    kind = draw(st.sampled_from(["raw", "bad-utf8", "escapes", "nesting", "field-nesting", "numbers", "strings",
                                 "wrong-types", "non-object", "nul-bytes"]))
    field = draw(st.sampled_from(["content", "model", "prompt", "input", "system", "user"]))
    # Ollama needs a model name: a real one lets a body get past that check to the persona.
    model = draw(st.sampled_from(["", "Fuzz", "fuzz:latest", "default", "nobody"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "bad-utf8":
        junk = draw(_NASTY_BYTES)
        return (b'{"model": "' + model.encode() + b'", "messages": [{"role": "user", "content": "hi ' + junk +
                b'"}], "prompt": "' + junk + b'", "input": "' + junk + b'"}')
    if kind == "escapes":
        text = "".join(draw(st.lists(_NASTY_TEXT, min_size=1, max_size=4)))
        message = '{"role": "user", "content": "' + text + '"}'
        name = text if field == "model" else model
        return ('{"model": "' + name + '", "messages": [' + message + '], "prompt": "' + text + '", "input": "' +
                text + '", "system": "' + text + '", "user": "' + text + '"}').encode()
    if kind == "nesting":
        depth = draw(st.sampled_from([64, 600, 5000, big]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    if kind == "field-nesting":
        depth = draw(st.sampled_from([100, 2000, big // 2]))
        nested = "[" * depth + "]" * depth
        target = draw(st.sampled_from(["messages", "prompt", "input", "options", "stop", "content"]))
        if target == "content":
            return ('{"model": "' + model + '", "messages": [{"role": "user", "content": ' + nested + '}]}').encode()
        return ('{"model": "' + model + '", "' + target + '": ' + nested + "}").encode()
    if kind == "numbers":
        number = draw(_HUGE_NUMBERS)
        target = draw(st.sampled_from(["n", "max_tokens", "temperature", "top_p", "max_output_tokens",
                                       "max_completion_tokens", "num_predict", "model", "stream"]))
        options = '"options": {"num_predict": ' + number + ', "temperature": ' + number + "}, "
        return ('{"model": "' + model + '", ' + options + '"messages": [{"role": "user", "content": "hi"}], '
                '"prompt": "hi", "input": "hi", "' + target + '": ' + number + "}").encode()
    if kind == "strings":
        size = draw(st.sampled_from([1000, big]))
        text = draw(st.sampled_from(["a", "é", "😀", " ", "\\n", "\\u0000"])) * size
        return ('{"model": "' + model + '", "messages": [{"role": "user", "content": "' + text + '"}], "prompt": "' +
                text + '", "input": "' + text + '", "stop": ["' + text[:50] + '"], "user": "' + text[:100] +
                '"}').encode()
    if kind == "wrong-types":
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "prompt": "hi", "input": "hi"}
        for name in draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=4, unique=True)):
            body[name] = draw(_JSON_VALUES)
        if draw(st.booleans()):
            body["messages"] = draw(st.lists(_JSON_VALUES, max_size=3))
        return _json(body)
    if kind == "non-object":
        return _json(draw(st.one_of(st.lists(_JSON_VALUES, max_size=3), st.text(max_size=30), st.integers(),
                                    st.floats(allow_nan=False), st.booleans(), st.none())))
    # NUL bytes and control characters raw in the body, inside and outside strings.
    return b'\x00{"model": "\x00", "messages": [{"role": "user", "content": "\x01\x00\x1f"}]}\x00'


def post_routes(server: ServerProcess) -> list[str]:
    paths = httpx.get(server.base_url + "/openapi.json").json()["paths"]
    return sorted(path for path, operations in paths.items() if "post" in operations)


def run_hostile(server: ServerProcess, examples: int, big: int) -> int:
    routes = post_routes(server)
    assert {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/api/chat", "/api/generate"} <= set(routes)
    sent = 0
    with httpx.Client(base_url=server.base_url, timeout=60) as client:

        @fuzz_settings(examples)
        @given(path=st.sampled_from(routes), body=hostile_body(big),
               content_type=st.sampled_from(["application/json", "text/plain", None]))
        def fuzz(path: str, body: bytes, content_type: str | None) -> None:
            nonlocal sent
            headers = {"content-type": content_type} if content_type else {}
            response = client.post(path, content=body, headers=headers)
            sent += 1
            check_response(path, response.status_code, response.headers.get("content-type", ""), response.content,
                           f"POST {path} body={body[:300]!r}")

        fuzz()
    return sent


def test_hostile_bodies_on_every_post_route(fast_server: ServerProcess) -> None:
    sent = run_hostile(fast_server, HOSTILE_EXAMPLES, big=200_000)
    assert sent >= HOSTILE_EXAMPLES * 0.95
    assert_healthy(fast_server)


def test_hostile_bodies_short_run_on_the_default_chain(default_server: ServerProcess) -> None:
    sent = run_hostile(default_server, 300, big=20_000)
    assert sent >= 280
    assert_healthy(default_server)


# -- what fuzzing found, kept fixed ---------------------------------------------------------------------------


def test_the_language_never_names_a_file(fast_server: ServerProcess) -> None:
    """The failure solver read `data/failure/<lang>.txt`: a `lang` with `../` spoke any .txt file on the disk, a
    very long one made the solver fail (no answer at all), and every distinct one stayed cached forever."""
    # A directory whose path survives Query.lang_code (lower case, no "-").
    directory = Path(tempfile.mkdtemp(prefix="personafuzz", dir="/tmp"))
    private = directory / "private.txt"
    private.write_text("a private line nobody should hear\n")
    traversal = "/".join([".."] * 12) + str(private.with_suffix(""))
    for lang in (traversal, "x" * 300, "en\u0000", "\ud7ff"):
        reply = httpx.post(fast_server.base_url + "/v1/chat/completions", timeout=30,
                           json={"lang": lang, "messages": [{"role": "user", "content": "hello"}]})
        assert reply.status_code == 200
        body = reply.json()
        assert body["solver"] == "ovos-solver-failure-plugin", lang[:40]
        assert "private line" not in body["choices"][0]["message"]["content"]
        assert body["choices"][0]["message"]["content"].strip()
    shutil.rmtree(directory)


def test_integers_beyond_64_bits_in_tool_arguments(fast_server: ServerProcess) -> None:
    """JSON allows any integer; orjson writes none beyond 64 bits: a tool call's arguments (or an echoed tool
    schema) holding one made the answer a 500."""
    huge = -9223372036854775809
    bodies = {
        "/model/bench/converse": {"messages": [{"role": "assistant", "content": [
            {"toolUse": {"name": "f", "toolUseId": "t1", "input": {"n": [huge]}}}]},
            {"role": "user", "content": [{"text": "hi"}]}]},
        "/v1/messages": {"model": "bench", "max_tokens": 16, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"n": huge}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]},
        "/api/chat": {"model": "bench", "stream": False, "messages": [
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"n": huge}}}]},
            {"role": "user", "content": "hi"}]},
        "/v1/responses": {"model": "bench", "input": "hi", "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object", "maximum": huge}}]},
    }
    for path, body in bodies.items():
        reply = httpx.post(fast_server.base_url + path, content=json.dumps(body), timeout=30,
                           headers={"content-type": "application/json"})
        assert reply.status_code < 500, (path, reply.text[:300])
        reply.json()
    assert_healthy(fast_server)
