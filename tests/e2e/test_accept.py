"""What OpenAI and Ollama accept is accepted: `null` for optional fields, integral floats for integers.

Through a real server process, with the real `openai` client (which sends `None` as JSON null) and raw JSON
where a client would never send the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import ServerProcess, start_server_process

TEXT = "one two three four five six seven eight"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("accept")
    path = root / "fixed.json"
    path.write_bytes(orjson.dumps({"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": TEXT}}))
    proc = start_server_process("--persona", str(path), log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=30)


def test_the_openai_client_may_send_null_for_every_optional_field(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="Fixed", messages=HI, n=None, stream=None, stream_options=None, stop=None, max_tokens=None,
        max_completion_tokens=None, temperature=None, top_p=None, user=None, presence_penalty=None, seed=None)
    assert completion.choices[0].message.content == TEXT
    assert len(completion.choices) == 1
    legacy = client.completions.create(model="Fixed", prompt="hi", n=None, stream=None, echo=None, stop=None,
                                       max_tokens=None, temperature=None, suffix=None, user=None)
    assert legacy.choices[0].text == TEXT
    response = client.responses.create(model="Fixed", input="hi", instructions=None, max_output_tokens=None,
                                       temperature=None, top_p=None, stream=None, store=None, user=None,
                                       metadata=None, previous_response_id=None)
    assert response.output_text == TEXT


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_null_everywhere_in_raw_json(server: ServerProcess, path: str) -> None:
    nulls = {key: None for key in ("model", "n", "stream", "stream_options", "stop", "max_tokens",
                                   "temperature", "top_p", "user", "lang", "units")}
    body = {**nulls, "messages": HI} if "chat" in path else {**nulls, "prompt": "hi", "echo": None}
    response = post(server, path, body)
    assert response.status_code == 200, response.text
    assert post(server, "/v1/chat/completions", {"messages": HI, "stream": True,
                                                 "stream_options": {"include_usage": None}}).status_code == 200


def test_integral_floats_are_integers(server: ServerProcess) -> None:
    chat = post(server, "/v1/chat/completions", {"model": "Fixed", "messages": HI, "max_tokens": 4.0, "n": 2.0})
    assert chat.status_code == 200, chat.text
    choices = chat.json()["choices"]
    assert len(choices) == 2 and choices[0]["message"]["content"] == "one two three four"
    assert choices[0]["finish_reason"] == "length"
    responses = post(server, "/v1/responses", {"model": "Fixed", "input": "hi", "max_output_tokens": 2.0})
    assert responses.status_code == 200 and responses.json()["status"] == "incomplete"
    for path, body in [("/v1/chat/completions", {"messages": HI, "max_tokens": 4.5}),
                       ("/v1/chat/completions", {"messages": HI, "n": 1.5}),
                       ("/v1/responses", {"input": "hi", "max_output_tokens": 2.5})]:
        refused = post(server, path, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] in ("max_tokens", "n", "max_output_tokens")


def test_ollama_integral_options(server: ServerProcess) -> None:
    body = {"model": "Fixed", "messages": HI, "stream": False, "options": {"num_predict": 3.0, "temperature": 1}}
    reply = post(server, "/api/chat", body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "one two three" and reply.json()["done_reason"] == "length"
    generated = post(server, "/api/generate", {"model": "Fixed", "prompt": "hi", "stream": False,
                                               "options": {"num_predict": 50.0}})
    assert generated.status_code == 200 and generated.json()["response"] == TEXT
    refused = post(server, "/api/chat", {**body, "options": {"num_predict": 3.5}})
    assert refused.status_code == 400
    assert refused.json() == {"error": "Invalid value for 'options.num_predict': Input should be a valid integer"}


def test_responses_item_errors_name_the_item(server: ServerProcess) -> None:
    body = {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}
    error = post(server, "/v1/responses", body).json()["error"]
    assert error["param"] == "input[0].content[0].text"
    assert "str" not in error["param"] and "list[" not in error["message"]
