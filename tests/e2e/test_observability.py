"""Observability through a real server: `/metrics` counts what happened, request ids reach responses and logs,
`--log-format json`, and `/openapi.json` describes every route."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from persona_server.api.routes import flat_routes
from persona_server.metrics import FLUSH_SECONDS
from tests.conftest import ServerProcess, start_server_process

KEY = "observe-test-key"
SECRET = "hush-hush-appid-4711"
AUTH = {"Authorization": f"Bearer {KEY}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, headers: dict[str, str] | None = None) -> Samples:
    reply = httpx.get(base_url + "/metrics", headers=AUTH if headers is None else headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def persona_file(directory: Path, name: str, data: dict) -> str:
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"name": name, **data}), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    """One server for the module: an API key, strict models, JSON logs with access lines, three personas whose
    first solver misses, fails or times out before the failure solver (or a slow stream) answers."""
    root = tmp_path_factory.mktemp("observe")
    files = [
        persona_file(root, "Watch", {"solvers": ["test-fixed", "ovos-solver-failure-plugin"],
                                     "test-fixed": {"text": "", "appid": SECRET}}),
        persona_file(root, "Flaky", {"solvers": ["test-fixed", "test-stream", "ovos-solver-failure-plugin"],
                                     "test-fixed": {"fail": True},
                                     "test-stream": {"pieces": ["one ", "two ", "three"], "interval": 0.4}}),
        persona_file(root, "Slow", {"solvers": ["test-fixed", "ovos-solver-failure-plugin"],
                                    "test-fixed": {"text": "late", "delay": 5, "timeout": 0.2}}),
    ]
    args = [arg for file in files for arg in ("--persona", file)]
    process = start_server_process(*args, "--api-key", KEY, "--strict-models", "--log-format", "json",
                                   "--access-log", log_path=root / "server.log", env=plugin_env)
    yield process
    process.stop()


def log_records(server: ServerProcess) -> list[dict]:
    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def wait_for_log(server: ServerProcess, predicate: Callable[[dict], bool], timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [record for record in log_records(server) if predicate(record)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- /metrics ---------------------------------------------------------------------------------------------------


def test_metrics_count_requests_solver_outcomes_and_refusals(server: ServerProcess) -> None:
    before = scrape(server.base_url)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model="Watch", messages=[{"role": "user", "content": "hello"}])
    assert reply.model_extra["solver"] == "ovos-solver-failure-plugin"
    ollama_client = ollama.Client(host=server.base_url, headers=AUTH)
    answer = ollama_client.chat(model="Flaky", messages=[{"role": "user", "content": "hello"}], stream=False)
    assert answer["message"]["content"] == "one two three"
    client.completions.create(model="Slow", prompt="hello")
    assert httpx.get(server.base_url + "/v1/models/Watch", headers=AUTH).status_code == 200
    assert httpx.get(server.base_url + "/v1/models/no-such-model-91", headers=AUTH).status_code == 404
    # Refusals: a wrong key, an unknown model with --strict-models, a body over the size limit.
    assert httpx.get(server.base_url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody-93", messages=[{"role": "user", "content": "hi"}])
    too_big = httpx.post(server.base_url + "/v1/chat/completions", headers=AUTH,
                         content=b'{"messages": "' + b"x" * (17 * 1024 * 1024) + b'"}')
    assert too_big.status_code == 413
    hostile_page = httpx.get(server.base_url + "/v1/models", headers={**AUTH, "Origin": "https://evil.example"})
    assert hostile_page.status_code == 403
    after = scrape(server.base_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "persona_server_requests_total"
    assert delta(requests, route="/v1/chat/completions", method="POST", status="200", persona="Watch") == 1
    assert delta(requests, route="/api/chat", method="POST", status="200", persona="Flaky") == 1
    assert delta(requests, route="/v1/completions", method="POST", status="200", persona="Slow") == 1
    # Route templates, never raw paths: a client cannot grow the label set.
    assert delta(requests, route="/v1/models/{model_id}", method="GET", status="200", persona="none") == 1
    assert delta(requests, route="/v1/models/{model_id}", method="GET", status="404", persona="none") == 1
    assert not any("no-such-model-91" in str(key) for key in after)
    assert delta(requests, route="/v1/models", method="GET", status="401", persona="none") == 1
    assert delta(requests, route="/v1/chat/completions", method="POST", status="404", persona="other") == 1
    assert delta(requests, route="/v1/chat/completions", method="POST", status="413", persona="none") == 1
    assert delta("persona_server_request_duration_seconds_count", route="/api/chat", method="POST") == 1
    # Flaky's stream takes two pauses of 0.4 s: the request's latency shows them.
    assert delta("persona_server_request_duration_seconds_sum", route="/api/chat", method="POST") >= 0.7

    turns = "persona_server_solver_duration_seconds_count"
    assert delta(turns, persona="Watch", solver="test-fixed", outcome="miss") == 1
    assert delta(turns, persona="Watch", solver="ovos-solver-failure-plugin", outcome="answer") == 1
    assert delta(turns, persona="Flaky", solver="test-fixed", outcome="error") == 1
    assert delta(turns, persona="Flaky", solver="test-stream", outcome="answer") == 1
    assert delta(turns, persona="Flaky", solver="ovos-solver-failure-plugin", outcome="answer") == 0
    assert delta(turns, persona="Slow", solver="test-fixed", outcome="timeout") == 1
    # The timed-out turn lasted its 0.2 s timeout, not the solver's 5 s delay.
    timed_out = delta("persona_server_solver_duration_seconds_sum", persona="Slow", solver="test-fixed",
                      outcome="timeout")
    assert 0.15 <= timed_out < 3
    assert delta("persona_server_solver_duration_seconds_count", persona="Watch", solver="test-fixed",
                 outcome="miss") == 1

    refused = "persona_server_refused_total"
    assert delta(refused, limit="api_key") == 1
    assert delta(refused, limit="unknown_model") == 1
    assert delta(refused, limit="body_size") == 1
    assert delta(refused, limit="browser_guard") == 1
    assert delta(requests, route="/v1/models", method="GET", status="403", persona="none") == 1


def test_open_streams_gauge_follows_a_stream(server: ServerProcess) -> None:
    gauge = "persona_server_open_streams"
    assert value(scrape(server.base_url), gauge) == 0
    seen: list[float] = []

    def stream() -> None:
        with httpx.stream("POST", server.base_url + "/api/generate", headers=AUTH, timeout=30,
                          json={"model": "Flaky", "prompt": "hello"}) as reply:
            for _ in reply.iter_lines():
                pass

    thread = threading.Thread(target=stream)
    thread.start()
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline and not seen:
        current = value(scrape(server.base_url), gauge)
        if current:
            seen.append(current)
        time.sleep(0.05)
    thread.join(timeout=30)
    assert seen == [1]
    assert value(scrape(server.base_url), gauge) == 0


def test_metrics_need_the_api_key(server: ServerProcess) -> None:
    reply = httpx.get(server.base_url + "/metrics")
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.base_url + "/metrics", headers=AUTH).status_code == 200


def test_metrics_are_summed_over_workers(tmp_path: Path) -> None:
    # The server's temporary metrics directory goes where TMPDIR says, so the test can see it cleaned up.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    persona = persona_file(tmp_path, "Solo", {"solvers": ["ovos-solver-failure-plugin"]})
    server = start_server_process("--persona", persona, "--workers", "2", log_path=tmp_path / "server.log",
                                  env={"TMPDIR": str(tmp)})
    try:
        deadline = time.monotonic() + 30
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        assert [p.name[:23] for p in tmp.iterdir()] == ["persona-server-metrics-"]
        pids: set[int] = set()
        sent = 0
        # New connections until both workers have answered (the kernel decides which one accepts).
        while sent < 24 or (len(pids) < 2 and sent < 400):
            with httpx.Client() as client:
                reply = client.post(server.base_url + "/v1/chat/completions",
                                    json={"model": "Solo", "messages": [{"role": "user", "content": "hi"}]})
                assert reply.status_code == 200
                sent += 1
                pids.add(client.get(server.base_url + "/status").json()["process"])
        assert len(pids) == 2, "both workers answered"
        # Each worker hands its tallies to the shared files within FLUSH_SECONDS of recording them.
        time.sleep(FLUSH_SECONDS + 0.5)
        for _ in range(6):  # whichever worker answers /metrics (a new connection each time), it reports the sum
            samples = scrape(server.base_url, headers={})
            assert value(samples, "persona_server_requests_total", route="/v1/chat/completions",
                         method="POST", status="200", persona="Solo") == sent
            assert value(samples, "persona_server_solver_duration_seconds_count", persona="Solo",
                         solver="ovos-solver-failure-plugin", outcome="answer") == sent
            assert value(samples, "persona_server_open_streams") == 0
    finally:
        server.stop()
    assert list(tmp.iterdir()) == [], "the metrics directory is removed when the server stops"


# -- request ids -----------------------------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed_and_logged(server: ServerProcess) -> None:
    request_id = "req-observe.42:a"
    reply = httpx.post(server.base_url + "/v1/chat/completions", headers={**AUTH, "X-Request-Id": request_id},
                       json={"model": "Flaky", "messages": [{"role": "user", "content": "hello"}]}, timeout=30)
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == request_id
    # The failing solver's warning, written while the request was handled, names the request.
    records = wait_for_log(server, lambda r: r["request_id"] == request_id and "skipped" in r["message"])
    assert records, server.log()[-3000:]
    assert set(records[0]) >= {"time", "level", "logger", "message", "request_id"}
    assert records[0]["level"] == "WARNING"
    assert records[0]["logger"] == "persona_server.chain"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])
    access = wait_for_log(server, lambda r: r["request_id"] == request_id and r["logger"] == "uvicorn.access")
    assert access and "POST /v1/chat/completions" in access[0]["message"]


@pytest.mark.parametrize("sent", [None, "x" * 129, "bad id with spaces", "semi;colon", "new\u00e9".encode()])
def test_a_missing_or_insane_request_id_is_replaced(server: ServerProcess, sent: str | bytes | None) -> None:
    headers: dict[str, str | bytes] = dict(AUTH)
    if sent is not None:
        headers["X-Request-Id"] = sent
    reply = httpx.get(server.base_url + "/v1/models", headers=headers)
    assert reply.status_code == 200
    generated = reply.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert wait_for_log(server, lambda r: r["request_id"] == generated and r["logger"] == "uvicorn.access")


def test_request_ids_on_errors_and_streams(server: ServerProcess) -> None:
    unauthorized = httpx.get(server.base_url + "/v1/models", headers={"X-Request-Id": "refused-1"})
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"] == "refused-1"
    missing = httpx.get(server.base_url + "/api/nothing-here", headers={**AUTH, "X-Request-Id": "missing-1"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "missing-1"
    forbidden = httpx.get(server.base_url + "/api/tags", headers={"Origin": "https://evil.example",
                                                                  "X-Request-Id": "forbidden-1"})
    assert forbidden.status_code == 403 and forbidden.headers["x-request-id"] == "forbidden-1"
    invalid = httpx.post(server.base_url + "/api/chat", headers={**AUTH, "X-Request-Id": "invalid-1"}, content=b"{")
    assert invalid.status_code == 400 and invalid.headers["x-request-id"] == "invalid-1"
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", timeout=30,
                      headers={**AUTH, "X-Request-Id": "stream-1"},
                      json={"model": "Watch", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as s:
        assert s.headers["x-request-id"] == "stream-1"
        assert s.headers["content-type"].startswith("text/event-stream")
        assert any(line == "data: [DONE]" for line in s.iter_lines())
    # A different id every time one is generated.
    ids = {httpx.get(server.base_url + "/health").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_json_logs_mask_secrets(server: ServerProcess) -> None:
    # The persona's appid is a secret: a client that puts it in a URL does not get it into the log.
    httpx.get(server.base_url + f"/v1/models/{SECRET}", headers={**AUTH, "X-Request-Id": "masked-1"})
    records = wait_for_log(server, lambda r: r["request_id"] == "masked-1" and r["logger"] == "uvicorn.access")
    assert records and "/v1/models/***" in records[0]["message"]
    # A client that sends the secret as its request id gets it back, but the log shows it masked.
    reply = httpx.get(server.base_url + "/v1/models/Watch", headers={**AUTH, "X-Request-Id": SECRET})
    assert reply.headers["x-request-id"] == SECRET
    assert wait_for_log(server, lambda r: r["request_id"] == "***" and "/v1/models/Watch" in r["message"])
    assert SECRET not in server.log()


def test_text_log_lines_carry_the_request_id(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    persona = persona_file(tmp_path, "Flaky", {"solvers": ["test-fixed", "ovos-solver-failure-plugin"],
                                               "test-fixed": {"fail": True}})
    server = start_server_process("--persona", persona, log_path=tmp_path / "server.log", env=plugin_env)
    try:
        reply = httpx.post(server.base_url + "/api/generate", headers={"X-Request-Id": "text-log-7"},
                           json={"model": "Flaky", "prompt": "hello", "stream": False})
        assert reply.status_code == 200 and reply.headers["x-request-id"] == "text-log-7"
        deadline = time.monotonic() + 10
        while "skipped" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(line for line in server.log().splitlines() if "skipped" in line)
        assert re.match(r"\S+ \S+ WARNING +\[text-log-7\] persona_server\.chain: persona 'Flaky': solver "
                        r"'test-fixed' skipped", line), line
        assert "[-] uvicorn.error" in server.log(), "lines outside a request say '-'"
    finally:
        server.stop()


# -- /openapi.json -------------------------------------------------------------------------------------------


def test_openapi_lists_every_route_with_its_request_model(server: ServerProcess) -> None:
    reply = httpx.get(server.base_url + "/openapi.json")  # open without the key
    assert reply.status_code == 200
    document = reply.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    expected = {
        ("/v1/chat/completions", "post"), ("/chat/completions", "post"), ("/v1/completions", "post"),
        ("/completions", "post"), ("/v1/models", "get"), ("/models", "get"), ("/v1/models/{model_id}", "get"),
        ("/models/{model_id}", "get"), ("/v1/responses", "post"), ("/responses", "post"),
        ("/v1/responses/{response_id}", "get"), ("/v1/responses/{response_id}", "delete"),
        ("/responses/{response_id}", "get"), ("/responses/{response_id}", "delete"),
        ("/api/chat", "post"), ("/api/generate", "post"), ("/api/embed", "post"), ("/api/embeddings", "post"),
        ("/api/tags", "get"), ("/api/ps", "get"), ("/api/show", "post"), ("/api/version", "get"),
        ("/health", "get"), ("/status", "get"), ("/", "get"), ("/metrics", "get"), ("/openapi.json", "get"),
    }
    listed = {(path, method) for path, operations in paths.items() for method in operations}
    assert expected <= listed
    served = {(re.sub(r":\w+}", "}", route.path), method.lower())
              for route in flat_routes() for method in route.methods or () if method != "HEAD"}
    assert listed == served
    schemas = document["components"]["schemas"]

    def body_schema(path: str) -> dict:
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return schemas[schema["$ref"].rsplit("/", 1)[1]]

    assert "messages" in body_schema("/v1/chat/completions")["properties"]
    assert body_schema("/v1/chat/completions")["required"] == ["messages"]
    assert "prompt" in body_schema("/v1/completions")["properties"]
    assert "input" in body_schema("/v1/responses")["properties"]
    assert "messages" in body_schema("/api/chat")["properties"]
    assert "prompt" in body_schema("/api/generate")["properties"]
    # Every reference resolves, and errors have their protocol's shape.
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)):
        assert ref in schemas
    assert paths["/api/chat"]["post"]["responses"]["4XX"]["$ref"].endswith("/OllamaError")
    assert paths["/v1/chat/completions"]["post"]["responses"]["4XX"]["$ref"].endswith("/OpenAIError")
    assert schemas["OllamaErrorBody"]["properties"]["error"]["type"] == "string"
    assert set(schemas["OpenAIErrorBody"]["properties"]["error"]["required"]) == {"message", "type", "param", "code"}
    vendors = {"/v1/messages": "AnthropicError", "/v1beta/models/{model}:generateContent": "GeminiError",
               "/model/{model_id}/converse": "BedrockError"}
    for path, error in vendors.items():
        assert paths[path]["post"]["responses"]["4XX"]["$ref"].endswith("/" + error)
    assert "max_tokens" in body_schema("/v1/messages")["required"]
    assert "contents" in body_schema("/v1beta/models/{model}:generateContent")["properties"]
    assert "inferenceConfig" in body_schema("/model/{model_id}/converse")["properties"]
    assert schemas["BedrockErrorBody"]["required"] == ["message"]
    assert paths["/health"]["get"]["security"] == [] and paths["/openapi.json"]["get"]["security"] == []
    assert "security" not in paths["/metrics"]["get"]
    index = httpx.get(server.base_url + "/", headers=AUTH).json()
    assert {"/metrics", "/openapi.json"} <= set(index["endpoints"])
