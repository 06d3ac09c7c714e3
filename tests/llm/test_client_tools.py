"""Client tools and structured outputs through a REAL server to the scripted upstream, with the real clients:
`openai`, LangChain's `with_structured_output`, openai-agents and pydantic-ai with an `output_type`, and the
`ollama` client's `format`. The upstream records what it was asked: the client's tools, tool_choice and
response_format must reach it, and its tool calls and JSON must come back as the client's protocol says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import ServerProcess, persona_args, start_server_process

from .upstream import Reply, Upstream, json_tokens

OPENAI = "ovos-solver-openai-plugin"
SECOND = "openai"  # the same solver under its alias: a second LLM in one chain, with its own block
FAILURE = "ovos-solver-failure-plugin"


class City(BaseModel):
    name: str
    population: int


CITY = {"name": "Lisbon", "population": 545000}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def server(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("client-tools")

    def block(model: str) -> dict[str, Any]:
        return {"api_url": upstream.base_url, "key": "sk-tools", "model": model, "timeout": 5}

    args = persona_args(root, {
        "tools.json": {"name": "Tools", "solvers": [OPENAI, FAILURE], OPENAI: block("tools"),
                       FAILURE: {"answers": ["fallback"]}},
        # Persona-side tools beside the client's: a look-up the LLM may call, run here.
        "mixed.json": {"name": "Mixed", "solvers": [OPENAI, FAILURE], FAILURE: {"answers": ["fallback"]},
                       OPENAI: {**block("mixed"), "tool_solvers": [
                           {"solver": "failure", "answers": ["High tide is at noon."]}]}},
        # Two LLMs: when the first one's JSON does not hold, the second one answers.
        "two.json": {"name": "Two", "solvers": [OPENAI, SECOND, FAILURE], OPENAI: block("first"),
                     SECOND: block("second"), FAILURE: {"answers": ["fallback"]}},
    })
    proc = start_server_process(*args, log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def last_body(upstream: Upstream, model: str = "tools") -> dict[str, Any]:
    return next(r.body for r in reversed(upstream.requests) if r.body.get("model") == model)


def weather_call(city: str = "Porto") -> Reply:
    return Reply(tool_calls=[("get_weather", json.dumps({"city": city}))])


# -- the openai client ---------------------------------------------------------------------------------------


def test_tool_call_relayed_whole(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(weather_call(), model="tools")
    completion = client.chat.completions.create(
        model="Tools", messages=[{"role": "user", "content": "Weather in Porto?"}],
        tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Porto"}
    assert call.id
    body = last_body(upstream)
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False


def test_tool_call_relayed_as_deltas(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(weather_call("Faro"), model="tools")
    stream = client.chat.completions.create(
        model="Tools", stream=True, messages=[{"role": "user", "content": "Weather in Faro?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    deltas, finish = [], []
    for chunk in stream:
        choice = chunk.choices[0]
        deltas += choice.delta.tool_calls or []
        finish.append(choice.finish_reason)
    # As OpenAI streams them: the first fragment has index, id, type and name; the rest only arguments.
    assert len(deltas) == 2
    assert deltas[0].index == 0 and deltas[0].id and deltas[0].type == "function"
    assert deltas[0].function.name == "get_weather"
    assert deltas[1].id is None and deltas[1].function.name is None
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Faro"}
    assert [f for f in finish if f] == ["tool_calls"]
    assert last_body(upstream)["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_tool_results_in_the_history_reach_the_upstream(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Sunny", " in", " Porto."]), model="tools")
    call = {"id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'}}
    completion = client.chat.completions.create(model="Tools", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Porto?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 24 C"},
    ])
    assert completion.choices[0].message.content == "Sunny in Porto."
    assert completion.choices[0].finish_reason == "stop"
    messages = last_body(upstream)["messages"]
    assert messages[-2] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 24 C"}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answer_passes_and_reaches_the_upstream(upstream: Upstream, client: openai.OpenAI,
                                                            stream: bool) -> None:
    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    response_format = {"type": "json_schema", "json_schema": {
        "name": "City", "schema": City.model_json_schema(), "strict": True}}
    kwargs: dict[str, Any] = {"model": "Tools", "response_format": response_format,
                              "messages": [{"role": "user", "content": "A city, as JSON"}]}
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            stream=True, **kwargs) if c.choices)
    else:
        text = client.chat.completions.create(**kwargs).choices[0].message.content or ""
    assert json.loads(text) == CITY
    assert last_body(upstream)["response_format"] == response_format


def test_an_answer_that_breaks_the_schema_is_a_miss(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=json_tokens({"name": "Lisbon", "population": "many"})), model="first")
    upstream.script(Reply(tokens=json_tokens(CITY)), model="second")
    completion = client.chat.completions.create(model="Two", messages=[{"role": "user", "content": "A city"}],
                                                response_format={"type": "json_schema", "json_schema": {
                                                    "name": "City", "schema": City.model_json_schema(),
                                                    "strict": True}})
    assert json.loads(completion.choices[0].message.content or "") == CITY
    assert completion.model_extra["solver"] == SECOND


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_that_is_not_json_is_a_miss(upstream: Upstream, client: openai.OpenAI, stream: bool) -> None:
    upstream.script(Reply(tokens=["Sure! ", "Here is a city: Lisbon."]), model="first")
    upstream.script(Reply(tokens=json_tokens(CITY)), model="second")
    kwargs: dict[str, Any] = {"model": "Two", "response_format": {"type": "json_object"},
                              "messages": [{"role": "user", "content": "A city, as JSON"}]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].model_extra["solver"] == SECOND
    else:
        completion = client.chat.completions.create(**kwargs)
        text = completion.choices[0].message.content or ""
        assert completion.model_extra["solver"] == SECOND
    assert json.loads(text) == CITY


def test_no_json_anywhere_is_an_error_never_prose(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["not json"]), model="first")
    upstream.script(Reply(tokens=["still not json"]), model="second")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="Two", response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "A city, as JSON"}])
    assert caught.value.status_code == 422
    assert "fallback" not in str(caught.value.body)


def test_an_unusable_strict_schema_is_refused_up_front(upstream: Upstream, client: openai.OpenAI) -> None:
    asked = len(upstream.requests)
    with pytest.raises(openai.BadRequestError, match="Invalid schema") as caught:
        client.chat.completions.create(model="Tools", messages=[{"role": "user", "content": "A city"}],
                                       response_format={"type": "json_schema", "json_schema": {
                                           "name": "Bad", "schema": {"type": 12}, "strict": True}})
    assert caught.value.body["param"] == "response_format"  # type: ignore[index]
    assert len(upstream.requests) == asked  # the upstream was never asked


def test_a_text_answer_to_a_required_tool_call_is_a_miss(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["I would rather chat."]), model="first")
    upstream.script(weather_call(), model="second")
    completion = client.chat.completions.create(
        model="Two", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL],
        tool_choice="required")
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.model_extra["solver"] == SECOND


def test_tool_choice_none_takes_the_tools_away(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["No", " tools."]), model="tools")
    completion = client.chat.completions.create(
        model="Tools", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL], tool_choice="none")
    assert completion.choices[0].message.content == "No tools."
    body = last_body(upstream)
    assert "tools" not in body and "tool_choice" not in body


def test_persona_tools_run_here_and_client_tools_go_to_the_client(upstream: Upstream,
                                                                   client: openai.OpenAI) -> None:
    upstream.script(Reply(tool_calls=[("search_failure", '{"query": "tide"}')]), weather_call("Nazare"),
                    model="mixed")
    # The client also offers a tool named like the persona's: the persona's wins, the client's is not offered.
    clash = {"type": "function", "function": {"name": "search_failure", "description": "the client's own",
                                              "parameters": {"type": "object"}}}
    completion = client.chat.completions.create(model="Mixed", tools=[WEATHER_TOOL, clash], messages=[
        {"role": "user", "content": "Tide and weather in Nazare?"}])
    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]  # only the client's tool reached the client
    assert completion.choices[0].finish_reason == "tool_calls"
    first, second = [r.body for r in upstream.requests if r.body.get("model") == "mixed"][-2:]
    names = [tool["function"]["name"] for tool in first["tools"]]
    assert sorted(names) == ["get_weather", "search_failure"]
    ours = next(tool for tool in first["tools"] if tool["function"]["name"] == "search_failure")
    assert ours["function"]["description"] != "the client's own"
    # The persona's tool ran server-side and its result went back to the model.
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "High tide is at noon."}


# -- agent frameworks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_json_schema(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    from langchain_openai import ChatOpenAI

    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    llm = ChatOpenAI(model="Tools", base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    structured = llm.with_structured_output(City, method="json_schema")
    if stream:
        result = list(structured.stream("A city please"))[-1]
    else:
        result = structured.invoke("A city please")
    assert result == City(**CITY)
    response_format = last_body(upstream)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "City"
    assert response_format["json_schema"]["schema"]["properties"].keys() == {"name", "population"}


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_function_calling(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    from langchain_openai import ChatOpenAI

    upstream.script(Reply(tool_calls=[("City", json.dumps(CITY))]), model="tools")
    llm = ChatOpenAI(model="Tools", base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    structured = llm.with_structured_output(City, method="function_calling")
    if stream:
        result = list(structured.stream("A city please"))[-1]
    else:
        result = structured.invoke("A city please")
    assert result == City(**CITY)
    body = last_body(upstream)
    assert [tool["function"]["name"] for tool in body["tools"]] == ["City"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "City"}}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_agents_output_type(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    import asyncio

    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled

    set_tracing_disabled(True)
    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    model = OpenAIChatCompletionsModel(
        model="Tools", openai_client=openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x",
                                                        max_retries=0))
    agent = Agent(name="cities", instructions="Answer with a city.", model=model, output_type=City)

    async def run() -> Any:
        if not stream:
            return (await Runner.run(agent, "A city please")).final_output
        result = Runner.run_streamed(agent, "A city please")
        async for _ in result.stream_events():
            pass
        return result.final_output

    assert asyncio.run(run()) == City(**CITY)
    response_format = last_body(upstream)["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_pydantic_ai_output_type(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    import asyncio

    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    upstream.script(Reply(tool_calls=[("final_result", json.dumps(CITY))]), model="tools")
    model = OpenAIChatModel("Tools", provider=OpenAIProvider(base_url=server.base_url + "/v1", api_key="x"))
    agent = Agent(model, output_type=City)

    async def run() -> Any:
        if not stream:
            return (await agent.run("A city please")).output
        async with agent.run_stream("A city please") as result:
            return await result.get_output()

    assert asyncio.run(run()) == City(**CITY)
    body = last_body(upstream)
    assert [tool["function"]["name"] for tool in body["tools"]] == ["final_result"]
    assert body["tool_choice"] == "required"


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_format_schema(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    import ollama

    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    client = ollama.Client(host=server.base_url)
    messages = [{"role": "user", "content": "A city please"}]
    if stream:
        content = "".join(part.message.content or "" for part in client.chat(
            model="Tools", messages=messages, format=City.model_json_schema(), stream=True))
    else:
        content = client.chat(model="Tools", messages=messages, format=City.model_json_schema()).message.content
    assert City.model_validate_json(content or "") == City(**CITY)
    response_format = last_body(upstream)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == City.model_json_schema()


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_tools(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    import ollama

    upstream.script(weather_call("Braga"), model="tools")
    client = ollama.Client(host=server.base_url)
    messages = [{"role": "user", "content": "Weather in Braga?"}]
    if stream:
        calls = [call for part in client.chat(model="Tools", messages=messages, tools=[WEATHER_TOOL], stream=True)
                 for call in part.message.tool_calls or []]
    else:
        calls = client.chat(model="Tools", messages=messages, tools=[WEATHER_TOOL]).message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Braga"})]
    assert last_body(upstream)["tools"] == [WEATHER_TOOL]


# -- the Responses API ---------------------------------------------------------------------------------------

RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
                  "parameters": WEATHER_TOOL["function"]["parameters"]}


def test_responses_function_call_whole(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(weather_call("Evora"), model="tools")
    response = client.responses.create(model="Tools", input="Weather in Evora?", tools=[RESPONSES_TOOL],
                                       tool_choice="required")
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Evora"})]
    assert calls[0].call_id and response.tool_choice == "required"
    assert [t.name for t in response.tools] == ["get_weather"]
    body = last_body(upstream)
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == "required"


def test_responses_function_call_streamed(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(weather_call("Beja"), model="tools")
    events = list(client.responses.create(model="Tools", input="Weather in Beja?", tools=[RESPONSES_TOOL],
                                          stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" not in kinds  # the answer is the call alone
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "get_weather"
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(deltas) == json.loads(done.arguments) == {"city": "Beja"}
    final = events[-1]
    assert final.type == "response.completed"
    assert [item.type for item in final.response.output] == ["function_call"]


def test_responses_call_outputs_reach_the_upstream(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Rainy."]), model="tools")
    response = client.responses.create(model="Tools", tools=[RESPONSES_TOOL], input=[
        {"role": "user", "content": "Weather in Porto?"},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city": "Porto"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "rain"},
    ])
    assert response.output_text == "Rainy."
    messages = last_body(upstream)["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == "call_9"
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_9", "content": "rain"}


@pytest.mark.parametrize("stream", [False, True])
def test_responses_text_format_is_honoured_and_echoed(upstream: Upstream, client: openai.OpenAI,
                                                     stream: bool) -> None:
    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    fmt = {"type": "json_schema", "name": "City", "schema": City.model_json_schema(), "strict": True}
    if stream:
        events = list(client.responses.create(model="Tools", input="A city", text={"format": fmt}, stream=True))
        response = events[-1].response
    else:
        response = client.responses.create(model="Tools", input="A city", text={"format": fmt})
    assert json.loads(response.output_text) == CITY
    assert response.text.format.type == "json_schema" and response.text.format.name == "City"
    assert last_body(upstream)["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "City", "schema": City.model_json_schema(), "strict": True}}


# -- Anthropic -------------------------------------------------------------------------------------------------

ANTHROPIC_TOOL = {"name": "get_weather", "description": "The weather in a city.",
                  "input_schema": WEATHER_TOOL["function"]["parameters"]}


def test_anthropic_tool_use_whole(upstream: Upstream, server: ServerProcess) -> None:
    import anthropic

    upstream.script(weather_call("Leiria"), model="tools")
    client = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
    message = client.messages.create(model="Tools", max_tokens=100, tools=[ANTHROPIC_TOOL],
                                     tool_choice={"type": "any"},
                                     messages=[{"role": "user", "content": "Weather in Leiria?"}])
    assert message.stop_reason == "tool_use"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Leiria"})]
    body = last_body(upstream)
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == "required"


def test_anthropic_tool_use_streamed_and_results_sent_back(upstream: Upstream, server: ServerProcess) -> None:
    import anthropic

    upstream.script(Reply(tokens=["Let me look."], tool_calls=[("get_weather", '{"city": "Aveiro"}')]),
                    model="tools")
    client = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
    question = {"role": "user", "content": "Weather in Aveiro?"}
    with client.messages.stream(model="Tools", max_tokens=100, tools=[ANTHROPIC_TOOL],
                                messages=[question]) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert "input_json" in kinds  # the SDK's event for input_json_delta
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    use = message.content[1]
    assert use.name == "get_weather" and use.input == {"city": "Aveiro"}

    upstream.script(Reply(tokens=["Windy", " in", " Aveiro."]), model="tools")
    reply = client.messages.create(model="Tools", max_tokens=100, tools=[ANTHROPIC_TOOL], messages=[
        question,
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "windy"}]},
    ])
    assert reply.content[0].text == "Windy in Aveiro." and reply.stop_reason == "end_turn"
    messages = last_body(upstream)["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == use.id
    assert messages[-1] == {"role": "tool", "tool_call_id": use.id, "content": "windy"}


# -- Gemini ----------------------------------------------------------------------------------------------------


def gemini_client(server: ServerProcess) -> Any:
    from google import genai

    return genai.Client(api_key="x", http_options={"base_url": server.base_url})


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_function_call(upstream: Upstream, server: ServerProcess, stream: bool) -> None:
    from google.genai import types

    upstream.script(weather_call("Sintra"), model="tools")
    declaration = types.FunctionDeclaration(
        name="get_weather", description="The weather in a city.",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    client = gemini_client(server)
    if stream:
        calls = [call for chunk in client.models.generate_content_stream(
            model="Tools", contents="Weather in Sintra?", config=config) for call in chunk.function_calls or []]
    else:
        calls = client.models.generate_content(model="Tools", contents="Weather in Sintra?",
                                               config=config).function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Sintra"})]
    body = last_body(upstream)
    # Gemini's schema types become JSON Schema's on the way upstream.
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == "required"


def test_gemini_json_schema(upstream: Upstream, server: ServerProcess) -> None:
    from google.genai import types

    upstream.script(Reply(tokens=json_tokens(CITY)), model="tools")
    client = gemini_client(server)  # kept: a client that is collected closes its connections
    response = client.models.generate_content(
        model="Tools", contents="A city", config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=City))
    assert response.parsed == City(**CITY)
    schema = last_body(upstream)["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object" and schema["properties"]["population"]["type"] == "integer"


# -- Bedrock Converse ------------------------------------------------------------------------------------------


@pytest.fixture
def converse_client(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3
    import botocore.config

    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "dummy-secret",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    return boto3.client("bedrock-runtime", endpoint_url=server.base_url,
                        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}))


BEDROCK_TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "The weather in a city.",
                                         "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
                 "toolChoice": {"any": {}}}


def test_bedrock_converse_tool_use(upstream: Upstream, converse_client: Any) -> None:
    upstream.script(weather_call("Tomar"), model="tools")
    question = {"role": "user", "content": [{"text": "Weather in Tomar?"}]}
    reply = converse_client.converse(modelId="Tools", messages=[question], toolConfig=BEDROCK_TOOLS)
    assert reply["stopReason"] == "tool_use"
    use = reply["output"]["message"]["content"][0]["toolUse"]
    assert (use["name"], use["input"]) == ("get_weather", {"city": "Tomar"})
    body = last_body(upstream)
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == "required"

    upstream.script(Reply(tokens=["Foggy."]), model="tools")
    answer = converse_client.converse(modelId="Tools", toolConfig={"tools": BEDROCK_TOOLS["tools"]}, messages=[
        question, reply["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "fog"}]}}]},
    ])
    assert answer["output"]["message"]["content"] == [{"text": "Foggy."}]
    assert last_body(upstream)["messages"][-1] == {"role": "tool", "tool_call_id": use["toolUseId"], "content": "fog"}


def test_bedrock_converse_stream_tool_use(upstream: Upstream, converse_client: Any) -> None:
    upstream.script(weather_call("Elvas"), model="tools")
    response = converse_client.converse_stream(modelId="Tools", toolConfig=BEDROCK_TOOLS, messages=[
        {"role": "user", "content": [{"text": "Weather in Elvas?"}]}])
    events = list(response["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    fragments = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                        if "contentBlockDelta" in e)
    assert json.loads(fragments) == {"city": "Elvas"}
    assert next(e["messageStop"] for e in events if "messageStop" in e)["stopReason"] == "tool_use"
