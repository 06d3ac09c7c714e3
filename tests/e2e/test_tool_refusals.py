"""The chain never pretends: a request that requires a tool call or a JSON answer, sent to a persona whose
solvers cannot give one (the default, rule-based persona), is a 400 in the protocol's own error format naming
the field as the client wrote it, never a plain-text 200. With the default `auto`, tools are offered and the
persona answers in text as before. Real server, real clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.conftest import ServerProcess, start_server_process

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
QUESTION = [{"role": "user", "content": "tell me a joke"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server_process(log_path=tmp_path_factory.mktemp("refusals") / "server.log")
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"tools": [TOOL], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}},
     "response_format"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_refuses_what_no_solver_can_give(client: openai.OpenAI, kwargs: dict[str, Any], param: str,
                                                     stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="", messages=QUESTION, stream=stream, **kwargs)  # type: ignore[call-overload]
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and error["code"] == "unsupported_value"
    assert f"'{param}'" in error["message"] and "persona" in error["message"]


def test_openai_chat_named_function_must_be_among_the_tools(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="not in 'tools'") as caught:
        client.chat.completions.create(model="", messages=QUESTION, tools=[TOOL],
                                       tool_choice={"type": "function", "function": {"name": "launch_rocket"}})
    assert caught.value.body["param"] == "tool_choice"  # type: ignore[index]


def test_openai_chat_auto_and_none_answer_in_text(client: openai.OpenAI) -> None:
    for choice in ("auto", "none"):
        completion = client.chat.completions.create(model="", messages=QUESTION, tools=[TOOL], tool_choice=choice)
        message = completion.choices[0].message
        assert message.content and not message.tool_calls
        assert completion.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="", messages=QUESTION, tools=[TOOL], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).strip()
    plain = client.chat.completions.create(model="", messages=QUESTION, response_format={"type": "text"})
    assert plain.choices[0].message.content


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA, "strict": True}}}, "text.format"),
    ({"tools": [{"type": "function", "name": "get_weather", "parameters": SCHEMA}], "tool_choice": "required"},
     "tool_choice"),
])
def test_responses_refuses(client: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="", input="tell me a joke", **kwargs)
    assert caught.value.body["param"] == param  # type: ignore[index]


def test_responses_auto_answers_text_and_echoes_the_format(client: openai.OpenAI) -> None:
    response = client.responses.create(model="", input="tell me a joke", text={"format": {"type": "text"}},
                                       tools=[{"type": "function", "name": "get_weather", "parameters": SCHEMA}])
    assert response.output_text and response.text.format.type == "text"
    assert [tool.name for tool in response.tools] == ["get_weather"]


@pytest.mark.parametrize("fmt", ["json", SCHEMA])
def test_ollama_refuses_format(server: ServerProcess, fmt: Any) -> None:
    client = ollama.Client(host=server.base_url)
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="default", messages=QUESTION, format=fmt, stream=False)
    assert caught.value.status_code == 400 and "'format'" in caught.value.error
    with pytest.raises(ollama.ResponseError, match="'format'"):
        client.generate(model="default", prompt="tell me a joke", format=fmt, stream=False)
    raw = httpx.post(server.base_url + "/api/chat", json={"model": "default", "messages": QUESTION, "format": fmt})
    assert raw.status_code == 400 and set(raw.json()) == {"error"}  # Ollama's own error shape


def test_ollama_tools_answer_in_text(server: ServerProcess) -> None:
    reply = ollama.Client(host=server.base_url).chat(model="default", messages=QUESTION, tools=[TOOL], stream=False)
    assert reply.message.content and not reply.message.tool_calls


def test_anthropic_refuses_a_required_call_and_answers_auto(server: ServerProcess) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
    tool = {"name": "get_weather", "input_schema": SCHEMA}
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        with pytest.raises(anthropic.BadRequestError, match="'tool_choice'") as caught:
            client.messages.create(model="default", max_tokens=50, messages=QUESTION, tools=[tool],
                                   tool_choice=choice)  # type: ignore[arg-type]
        assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="not in 'tools'"):
        client.messages.create(model="default", max_tokens=50, messages=QUESTION, tools=[tool],
                               tool_choice={"type": "tool", "name": "other"})
    message = client.messages.create(model="default", max_tokens=50, messages=QUESTION, tools=[tool])
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1beta/models/default:generateContent",
     {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"responseMimeType": "application/json"}},
     "responseMimeType"),
    ("/v1beta/models/default:generateContent",
     {"contents": [{"parts": [{"text": "hi"}]}], "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
     "toolConfig"),
    ("/v2/chat", {"model": "default", "messages": QUESTION, "response_format": {"type": "json_object"}},
     "response_format"),
    ("/v2/chat", {"model": "default", "messages": QUESTION, "tool_choice": "REQUIRED",
                  "tools": [TOOL]}, "tools"),
    ("/model/default/converse", {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                                 "toolConfig": {"tools": [], "toolChoice": {"any": {}}}}, "toolConfig"),
])
def test_other_protocols_refuse_rather_than_ignore(server: ServerProcess, path: str, body: dict[str, Any],
                                                   field: str) -> None:
    response = httpx.post(server.base_url + path, json=body)
    assert response.status_code == 400
    assert field in response.text
