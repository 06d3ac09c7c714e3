"""Google's Gemini API against a real server process, through the official `google-genai` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import ServerProcess, persona_args, start_server_process

FOX = "The quick brown fox jumps over the lazy dog."
KEY = "gemini-test-key"
PERSONAS = {
    "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
    "history.json": {"name": "History", "solvers": ["test-history"]},
    "streamer.json": {"name": "Streamer", "solvers": ["test-stream"],
                      "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01}},
    # Breaks off after two pieces: the answer fails mid-way.
    "breaks.json": {"name": "Breaks", "solvers": ["test-stream"],
                    "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01, "fail_after": 2}},
    # Slower than the server's keep-alive interval (see `server`): its streams carry keep-alives.
    "slow.json": {"name": "Slow", "solvers": ["test-fixed"], "test-fixed": {"text": "At last.", "delay": 0.5}},
}


def _start(root: Path, env: dict[str, str], *extra: str) -> ServerProcess:
    args = persona_args(root, PERSONAS)
    return start_server_process(*args, *extra, log_path=root / "server.log", env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory.mktemp("gemini"), {**plugin_env, "PERSONA_SERVER_PING_INTERVAL": "0.1"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory.mktemp("gemini-key"), plugin_env, "--api-key", KEY, "--strict-models",
                  "--access-log")
    yield proc
    proc.stop()


def client_for(base_url: str, api_version: str = "v1beta", key: str = "unused") -> genai.Client:
    options = types.HttpOptions(base_url=base_url, api_version=api_version,
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


# Both path styles, and both API versions the SDK speaks (v1 is its default).
@pytest.fixture(params=[("", "v1beta"), ("", "v1"), ("/gemini", "v1beta")], ids=["v1beta", "v1", "prefixed"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> genai.Client:
    prefix, version = request.param
    return client_for(server.base_url + prefix, version)


def test_generate_content(client: genai.Client) -> None:
    response = client.models.generate_content(model="fixed", contents="tell me about foxes")
    assert response.text == FOX
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.content.role == "model"  # type: ignore[union-attr]
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (4, 10, 14)
    assert response.model_version == "Fixed"
    assert response.response_id


def test_solver_and_sources_on_the_wire(server: ServerProcess) -> None:
    body = {"contents": [{"parts": [{"text": "foxes"}]}]}
    data = httpx.post(server.base_url + "/v1beta/models/fixed:generateContent", json=body).json()
    assert data["solver"] == "test-fixed"
    assert data["sources"] == [{"title": "Foxes", "url": "https://example.org/x"}]


def test_system_instruction_history_and_persona_by_model(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="models/HISTORY",
        contents=[types.Content(role="user", parts=[types.Part(text="first")]),
                  types.Content(role="model", parts=[types.Part(text="one")]),
                  types.Content(role="user", parts=[types.Part(text="second")])],
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.3, top_p=0.9,
                                           candidate_count=1),
    )
    assert response.text == "system=be brief | user=first | assistant=one | user=second"
    assert client.models.generate_content(model="gemini-2.5-flash", contents="x").model_version == "Fixed", \
        "an unknown model gets the default persona"


def test_limits(client: genai.Client) -> None:
    cut = client.models.generate_content(model="fixed", contents="foxes",
                                         config=types.GenerateContentConfig(max_output_tokens=3))
    assert cut.text == "The quick brown"
    assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]
    stopped = client.models.generate_content(model="fixed", contents="foxes",
                                             config=types.GenerateContentConfig(stop_sequences=["lazy"]))
    assert stopped.text == "The quick brown fox jumps over the "
    assert stopped.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_generate_content_stream(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="streamer", contents="a story",
                                                        config={"system_instruction": "be nice"}))
    assert len(chunks) >= 3, "the streaming solver's pieces arrive as they come"
    assert "".join(chunk.text or "" for chunk in chunks) == "Once upon a time."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata.candidates_token_count == 5  # type: ignore[union-attr]
    cut = list(client.models.generate_content_stream(model="streamer", contents="a story",
                                                     config={"max_output_tokens": 2}))
    assert "".join(c.text or "" for c in cut).rstrip() == "Once upon"
    assert cut[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]


def test_keep_alives_do_not_disturb_the_sdk(client: genai.Client, server: ServerProcess) -> None:
    chunks = list(client.models.generate_content_stream(model="slow", contents="well?"))
    assert "".join(c.text or "" for c in chunks) == "At last."
    body = {"contents": [{"parts": [{"text": "well?"}]}]}
    raw = httpx.post(server.base_url + "/v1beta/models/slow:streamGenerateContent?alt=sse", json=body).text
    assert raw.startswith("\n"), "a blank line kept the stream alive while the answer was slow"
    array = httpx.post(server.base_url + "/v1beta/models/slow:streamGenerateContent", json=body).text
    assert array.startswith("\n") and json.loads(array)[0]["candidates"][0]["content"]["parts"][0]["text"]


def test_an_answer_that_breaks_off(client: genai.Client) -> None:
    chunks = client.models.generate_content_stream(model="breaks", contents="a story")
    with pytest.raises(errors.ServerError, match="broke off midway") as info:
        for _ in chunks:
            pass
    assert info.value.code == 502
    with pytest.raises(errors.ServerError, match="broke off midway"):
        client.models.generate_content(model="breaks", contents="a story")


def test_stream_without_sse_is_a_json_array(server: ServerProcess) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "a story"}]}],
            "generationConfig": {"stopSequences": ["time"]}}
    with httpx.stream("POST", server.base_url + "/v1beta/models/streamer:streamGenerateContent", json=body) as r:
        assert r.headers["content-type"].startswith("application/json")
        pieces = list(r.iter_bytes())
    assert len(pieces) > 2, "written element by element"
    elements = json.loads(b"".join(pieces))
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements) == "Once upon a "
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"
    sse = httpx.post(server.base_url + "/gemini/v1beta/models/streamer:streamGenerateContent?alt=sse", json=body)
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.text.startswith("data: {")


def test_count_tokens(client: genai.Client) -> None:
    assert client.models.count_tokens(model="fixed", contents="tell me about foxes").total_tokens == 4


def test_models_list_and_get(client: genai.Client) -> None:
    models = list(client.models.list())
    assert [m.name for m in models] == ["models/Fixed", "models/History", "models/Streamer", "models/Breaks",
                                         "models/Slow"]
    assert "generateContent" in (models[0].supported_actions or [])
    paged = list(client.models.list(config={"page_size": 2}))
    assert len(paged) == 5, "the SDK follows nextPageToken"
    assert client.models.get(model="streamer").display_name == "Streamer"
    with pytest.raises(errors.ClientError) as info:
        client.models.get(model="nope")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")


def test_v1_models_list_format_follows_the_key_header(server: ServerProcess) -> None:
    assert httpx.get(server.base_url + "/v1/models").json()["object"] == "list"
    gemini = httpx.get(server.base_url + "/v1/models", headers={"x-goog-api-key": "k"}).json()
    assert gemini["models"][0]["name"] == "models/Fixed"
    assert httpx.get(server.base_url + "/v1/models?key=k").json()["models"][1]["displayName"] == "History"
    assert httpx.get(server.base_url + "/v1/models/fixed").json() == {
        "id": "Fixed", "object": "model", "created": pytest.approx(0, abs=2**40), "owned_by": "persona-server"}
    assert httpx.get(server.base_url + "/v1/models/fixed", headers={"x-goog-api-key": "k"}).json()["name"] \
        == "models/Fixed"


def test_bad_requests_raise_the_sdks_error(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError, match="candidateCount") as info:
        client.models.generate_content(model="fixed", contents="x", config={"candidate_count": 2})
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    with pytest.raises(errors.ClientError, match="'tools' is not supported"):
        client.models.generate_content(model="fixed", contents="x", config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="f", description="d")])]))
    with pytest.raises(errors.ClientError, match="inlineData' is not supported"):
        client.models.generate_content(model="fixed", contents=[types.Part.from_bytes(
            data=b"\x89PNG", mime_type="image/png")])


def test_raw_errors_in_gemini_shape(server: ServerProcess) -> None:
    empty = httpx.post(server.base_url + "/v1beta/models/fixed:generateContent", json={"contents": []})
    assert empty.status_code == 400
    assert empty.json()["error"]["status"] == "INVALID_ARGUMENT" and empty.json()["error"]["code"] == 400
    # Only GET reads `models/{name}` itself; a method we do not have is a method not allowed there.
    unknown = httpx.post(server.base_url + "/v1beta/models/fixed:predict", json={})
    assert unknown.status_code == 405 and unknown.json()["error"]["code"] == 405
    missing = httpx.post(server.base_url + "/gemini/v1beta/nothing", json={})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_api_key(keyed: ServerProcess) -> None:
    wrong = client_for(keyed.base_url, key="wrong")  # held: a collected Client closes its connection pool
    with pytest.raises(errors.ClientError, match="Incorrect API key") as info:
        wrong.models.generate_content(model="fixed", contents="hi")
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    right = client_for(keyed.base_url + "/gemini", key=KEY)
    assert right.models.generate_content(model="fixed", contents="hi").text == FOX
    assert "".join(c.text or "" for c in right.models.generate_content_stream(model="streamer", contents="x")) \
        == "Once upon a time."
    body: dict[str, Any] = {"contents": [{"parts": [{"text": "hi"}]}]}
    by_param = httpx.post(f"{keyed.base_url}/v1beta/models/fixed:generateContent?key={KEY}", json=body)
    assert by_param.status_code == 200
    wrong_param = httpx.post(keyed.base_url + "/v1beta/models/fixed:generateContent?key=nope", json=body)
    assert wrong_param.status_code == 401 and wrong_param.json()["error"]["status"] == "UNAUTHENTICATED"
    log = keyed.log()
    assert "generateContent?key=*** HTTP/1.1" in log, "the access log shows the request"
    assert KEY not in log, "but not the key in its query string"
    # --strict-models: an unknown model is Gemini's NOT_FOUND.
    with pytest.raises(errors.ClientError, match="not found") as missing:
        right.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert missing.value.code == 404
