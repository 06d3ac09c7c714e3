"""OpenAI's Responses API against a real server process, through the current `openai` client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from tests.conftest import ServerProcess, persona_args, start_server_process

FOX = "The quick brown fox jumps over the lazy dog."
EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("responses")
    files = {
        "echo.json": {"name": "EchoBot", "solvers": ["test-echo"]},
        "history.json": {"name": "History", "solvers": ["test-history"]},
        "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
    }
    args = persona_args(root, files)
    proc = start_server_process(*args, log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def test_create(client: openai.OpenAI) -> None:
    response = client.responses.create(model="echobot", input="hello there", store=True, user="ann")
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "EchoBot"
    assert response.output_text == "echo: hello there (1 messages)"
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 8)
    assert response.usage.total_tokens == 10
    assert response.user == "ann"
    assert response.model_extra and response.model_extra["store"] is False, "nothing is stored"
    assert response.model_extra["solver"] == "test-echo"


def test_input_items_and_instructions(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="history",
        instructions="be brief",
        input=[
            {"role": "user", "content": "first"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    assert response.output_text == "system=be brief | user=first | assistant=one | user=second"
    assert response.instructions == "be brief"


def test_streamed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="echobot", input="stream this please", stream=True))
    kinds = [event.type for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 3, "word-sized deltas"
    assert kinds == [*EVENT_ORDER[:4], *["response.output_text.delta"] * deltas, *EVENT_ORDER[5:],
                     "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "echo: stream this please (1 messages)"
    assert events[0].response.status == "in_progress"  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed"
    assert final.output_text == text
    assert final.id == events[0].response.id  # type: ignore[union-attr]


def test_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="fixed", input="tell me") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == FOX
    assert final.output_text == FOX
    part = final.output[0].content[0]  # type: ignore[union-attr]
    assert part.annotations[0].type == "url_citation"
    assert (part.annotations[0].title, part.annotations[0].url) == ("Foxes", "https://example.org/x")


@pytest.mark.parametrize("stream", [False, True])
def test_max_output_tokens_makes_an_incomplete_response(client: openai.OpenAI, stream: bool) -> None:
    if stream:
        events = list(client.responses.create(model="fixed", input="q", max_output_tokens=3, stream=True))
        assert events[-1].type == "response.incomplete"
        response = events[-1].response  # type: ignore[union-attr]
    else:
        response = client.responses.create(model="fixed", input="q", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "The quick brown"


def test_previous_response_id_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="echobot", input="more", previous_response_id="resp_123")
    assert info.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_123")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "echobot"}, "input"),
        ({"input": 5}, "input"),
        ({"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]}, "input[0].type"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "assistant", "content": "only me"}]}, "input"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": [{"role": "user", "content": 7}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 1}]}]}, "input[0].content[0].text"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_bad_requests(server: ServerProcess, body: dict[str, object], param: str) -> None:
    response = httpx.post(f"{server.base_url}/v1/responses", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_root_path_and_raw_sse(server: ServerProcess) -> None:
    response = httpx.post(f"{server.base_url}/responses", json={"model": "echobot", "input": "x"})
    assert response.json()["output"][0]["content"][0]["text"] == "echo: x (1 messages)"
    with httpx.stream("POST", f"{server.base_url}/v1/responses",
                      json={"model": "echobot", "input": "x", "stream": True}) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        blocks = streamed.read().decode().strip().split("\n\n")
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.removeprefix("event: ") == orjson.loads(data_line.removeprefix("data: "))["type"]
