"""Hugging Face TGI routes against a real server process, through `huggingface_hub.InferenceClient`, and raw."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import GenerationError, HfHubHTTPError, TextGenerationError, ValidationError

from persona_server.api.tgi import TGIGenerateRequest
from persona_server.settings import Settings
from tests.conftest import ServerProcess, persona_args, start_server_process, wait_for_file

FOX = "The quick brown fox jumps over the lazy dog. END here."
BEFORE_END = "The quick brown fox jumps over the lazy dog. "
KEY = "tgi-test-key"


def _start(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str], name: str,
           *extra: str) -> ServerProcess:
    root = tmp_path_factory.mktemp(name)
    files = {
        "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
        "history.json": {"name": "History", "solvers": ["test-history"]},
        "slow.json": {"name": "Slow", "solvers": ["test-fixed"],
                      "test-fixed": {"text": "late", "delay": 30, "timeout": 60, "marker": str(root / "slow.marker")}},
        "trickle.json": {"name": "Trickle", "solvers": ["test-stream"],
                         "test-stream": {"pieces": ["a", "b", "c"], "interval": 1, "timeout": 60,
                                         "marker": str(root / "trickle.marker")}},
        "drip.json": {"name": "Drip", "solvers": ["test-stream"],
                      "test-stream": {"pieces": ["one", " two"], "interval": 0.5, "timeout": 60}},
        # Breaks after two pieces; the failure solver behind it must not take over a half-sent answer.
        "breaks.json": {"name": "Breaks", "solvers": ["test-stream", "ovos-solver-failure-plugin"],
                        "test-stream": {"pieces": ["One ", "two ", "three."], "interval": 0.05, "fail_after": 2}},
        "silent.json": {"name": "Silent", "solvers": ["test-fixed"], "test-fixed": {"text": ""},
                        "on_no_answer": "error"},
    }
    args = persona_args(root, files)
    proc = start_server_process(*args, *extra, log_path=root / "server.log",
                                env={**plugin_env, "PERSONA_SERVER_PING_INTERVAL": "0.2"})
    proc.extra["root"] = root
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory, plugin_env, "tgi")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory, plugin_env, "tgi-locked", "--api-key", KEY, "--strict-models")
    yield proc
    proc.stop()


@pytest.fixture(params=["", "/tgi"], ids=["vendor-paths", "prefixed-paths"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> InferenceClient:
    return InferenceClient(base_url=server.base_url + request.param, api_key="anything")


def test_text_generation(client: InferenceClient) -> None:
    assert client.text_generation("what is a fox?") == FOX
    out = client.text_generation("what is a fox?", details=True)
    assert out.generated_text == FOX
    assert out.details is not None
    assert out.details.finish_reason == "eos_token"
    assert out.details.generated_tokens == 13
    assert "".join(t.text for t in out.details.tokens) == FOX
    assert len(out.details.tokens) == 13
    assert out.solver == "test-fixed"  # type: ignore[attr-defined]


def test_text_generation_streamed(client: InferenceClient) -> None:
    assert "".join(client.text_generation("hi", stream=True)) == FOX
    events = list(client.text_generation("hi", stream=True, details=True))
    assert len(events) == 14, "13 tokens, then the end of the sequence"
    assert [e.index for e in events] == list(range(14))
    assert all(e.details is None and e.generated_text is None for e in events[:-1])
    last = events[-1]
    assert last.token.special is True and last.token.text == ""
    assert last.generated_text == FOX
    assert last.details is not None
    assert (last.details.finish_reason, last.details.generated_tokens, last.details.input_length) == (
        "eos_token", 13, 1)


def test_stop_sequence(client: InferenceClient) -> None:
    out = client.text_generation("hi", details=True, stop=["END"])
    assert (out.generated_text, out.details and out.details.finish_reason) == (BEFORE_END, "stop_sequence")
    events = list(client.text_generation("hi", stream=True, details=True, stop=["END"]))
    assert events[-1].generated_text == BEFORE_END
    assert events[-1].details is not None and events[-1].details.finish_reason == "stop_sequence"


def test_token_limit(client: InferenceClient) -> None:
    out = client.text_generation("hi", details=True, max_new_tokens=3)
    assert (out.generated_text, out.details and out.details.finish_reason) == ("The quick brown", "length")
    events = list(client.text_generation("hi", stream=True, details=True, max_new_tokens=3))
    assert "".join(e.token.text for e in events) == "The quick brown"
    assert events[-1].details is not None and events[-1].details.finish_reason == "length"


def test_return_full_text(client: InferenceClient) -> None:
    assert client.text_generation("Q: ", return_full_text=True, max_new_tokens=2) == "Q: The quick"


def test_persona_chosen_by_model(server: ServerProcess) -> None:
    # A TGI server serves one model: the default persona, or the one the path names.
    history = InferenceClient(base_url=server.base_url + "/tgi/models/history")
    assert history.text_generation("who are you?") == "user=who are you?"
    assert "".join(history.text_generation("who are you?", stream=True)) == "user=who are you?"
    assert InferenceClient(base_url=server.base_url + "/tgi/models/Fixed").text_generation("x") == FOX
    # Raw requests may name it in the body.
    response = httpx.post(server.base_url + "/generate", json={"inputs": "x", "model": "History"})
    assert response.json()["generated_text"] == "user=x"
    response = httpx.post(server.base_url + "/tgi/models/History/generate", json={"inputs": "y"})
    assert response.json()["generated_text"] == "user=y"


def test_raw_routes(server: ServerProcess) -> None:
    body = {"inputs": "hi", "parameters": {"max_new_tokens": 2}}
    response = httpx.post(server.base_url + "/generate", json=body)
    assert response.status_code == 200 and response.json()["generated_text"] == "The quick"
    for bare in ({"inputs": "hi"}, {"inputs": "hi", "parameters": None, "stream": None}):
        assert httpx.post(server.base_url + "/generate", json=bare).json()["generated_text"] == FOX
    response = httpx.post(server.base_url + "/", json=body)  # the Inference API's shape: a list
    assert response.status_code == 200 and [r["generated_text"] for r in response.json()] == ["The quick"]
    with httpx.stream("POST", server.base_url + "/tgi/generate_stream", json=body) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in streamed.iter_lines() if line.startswith("data:")]
    assert orjson.loads(lines[-1][5:])["generated_text"] == "The quick"
    with httpx.stream("POST", server.base_url + "/", json={**body, "stream": True}) as streamed:
        lines = [line for line in streamed.iter_lines() if line.startswith("data:")]
    assert len(lines) == 3
    info = httpx.get(server.base_url + "/info").json()
    assert info["model_id"] == "Fixed" and info["max_stop_sequences"] == 4
    assert httpx.get(server.base_url + "/tgi/models/History/info").json()["model_id"] == "History"
    assert httpx.get(server.base_url + "/").json()["name"] == "persona-server", "GET / is still the index"


def test_bad_requests(client: InferenceClient, server: ServerProcess) -> None:
    with pytest.raises(ValidationError, match="max_new_tokens"):
        client.text_generation("hi", max_new_tokens=0)
    with pytest.raises(ValidationError, match="`grammar` is not supported"):
        client.text_generation("hi", grammar={"type": "json", "value": {"type": "object"}})
    with pytest.raises(ValidationError, match="temperature"):
        list(client.text_generation("hi", stream=True, temperature=0.0))
    response = httpx.post(server.base_url + "/generate", content=b"{oops")
    assert response.status_code == 422
    assert response.json()["error_type"] == "validation"
    assert response.json()["error"].startswith("The request body is not valid JSON")
    response = httpx.post(server.base_url + "/tgi/nothing", json={})
    assert response.status_code == 404 and set(response.json()) == {"error", "error_type"}


def test_sampling_maps_onto_the_query() -> None:
    body = TGIGenerateRequest.model_validate({"inputs": "x", "parameters": {
        "temperature": 0.5, "top_p": 0.8, "max_new_tokens": 9, "stop": ["\n"]}})
    query = body.query(Settings())
    assert (query.temperature, query.top_p, query.max_tokens, query.stop) == (0.5, 0.8, 9, ["\n"])


@pytest.mark.parametrize("path", ["", "/tgi"])
def test_api_key(locked: ServerProcess, path: str) -> None:
    with pytest.raises(TextGenerationError, match="Incorrect API key provided") as caught:
        InferenceClient(base_url=locked.base_url + path, api_key="wrong").text_generation("hi")
    cause = caught.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 401
    right = InferenceClient(base_url=locked.base_url + path, api_key=KEY)
    assert right.text_generation("hi") == FOX
    assert "".join(right.text_generation("hi", stream=True)) == FOX
    # `POST /` answers questions, so it needs the key; `GET /` and /health stay open.
    assert httpx.post(locked.base_url + "/", json={"inputs": "hi"}).status_code == 401
    assert httpx.get(locked.base_url + "/health").status_code == 200


def test_strict_models(locked: ServerProcess) -> None:
    response = httpx.post(locked.base_url + "/tgi/models/gpt2/generate", json={"inputs": "hi"},
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 404
    assert response.json() == {"error": "Model 'gpt2' not found", "error_type": "not_found"}


# -- slow answers: keep-alives, and a client that leaves cancels the work -------------------------------------


def test_keep_alives_while_a_slow_answer_streams(server: ServerProcess) -> None:
    client = InferenceClient(base_url=server.base_url + "/tgi/models/Drip")
    assert "".join(client.text_generation("x", stream=True)) == "one two"
    with httpx.stream("POST", server.base_url + "/generate_stream", json={"inputs": "x", "model": "Drip"}) as response:
        assert ": ping" in response.read().decode()


def test_disconnect_cancels_a_stream(server: ServerProcess) -> None:
    url = server.base_url + "/tgi/models/Trickle/generate_stream"
    with httpx.stream("POST", url, json={"inputs": "x"}) as response:
        assert any('"text":"a"' in line for line in response.iter_lines())
    assert wait_for_file(server.extra["root"] / "trickle.marker") == "cancelled"


def test_disconnect_cancels_a_whole_answer(server: ServerProcess) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/tgi/models/Slow", json={"inputs": "x"}, timeout=0.5)
    assert wait_for_file(server.extra["root"] / "slow.marker") == "cancelled"


# -- answers that break off or never come -----------------------------------------------------------------------


def test_an_answer_that_breaks_off(server: ServerProcess) -> None:
    client = InferenceClient(base_url=server.base_url + "/tgi/models/Breaks")
    received: list[str] = []
    with pytest.raises(GenerationError) as streamed:
        for token in client.text_generation("x", stream=True):
            received.append(token)
    assert "".join(received) == "One two "
    with pytest.raises(GenerationError) as whole:
        client.text_generation("x")
    assert str(whole.value) == str(streamed.value)
    cause = whole.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 502


def test_no_answer_with_on_no_answer_error(server: ServerProcess) -> None:
    client = InferenceClient(base_url=server.base_url + "/tgi/models/Silent")
    with pytest.raises(GenerationError) as whole:
        client.text_generation("x")
    cause = whole.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 422
    with pytest.raises(GenerationError):
        list(client.text_generation("x", stream=True))


def test_openapi_describes_the_tgi_routes(server: ServerProcess) -> None:
    document = httpx.get(server.base_url + "/openapi.json").json()
    paths = document["paths"]
    for path in ("/generate", "/generate_stream", "/tgi/generate", "/tgi/models/{model}/generate", "/"):
        assert paths[path]["post"]["responses"]["4XX"]["$ref"].endswith("/TGIError"), path
    assert paths["/"]["get"]["responses"]["4XX"]["$ref"].endswith("/OpenAIError"), "GET / is the index"
    assert set(document["components"]["schemas"]["TGIErrorBody"]["required"]) == {"error", "error_type"}
    assert "inputs" in document["components"]["schemas"]["TGIGenerateRequest"]["properties"]
