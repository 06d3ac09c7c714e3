"""Answers that break off or never come, through a real server process and the real `openai` / `ollama` clients.

A solver that fails after part of its answer went out ends the stream with an error event in the protocol's own
format (the clients raise on it); a chain where no solver answers apologises, or answers 422 with
`"on_no_answer": "error"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import orjson
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import EXAMPLES, ServerProcess, persona_args, run_cli, start_server_process

ENGLISH = set(dialogs("en"))
PORTUGUESE = set(dialogs("pt"))
FACTUAL = "what is the speed of light?"
PIECES = ["One ", "two ", "three ", "four."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("faults")
    files = {
        # Breaks after two pieces; the failure solver behind it must not take over a half-sent answer.
        "breaks.json": {"name": "Breaks", "solvers": ["test-stream", "ovos-solver-failure-plugin"],
                        "test-stream": {"pieces": PIECES, "interval": 0.05, "fail_after": 2}},
        "strict.json": {"name": "Strict", "solvers": ["ovos-solver-rivescript-plugin"], "on_no_answer": "error"},
    }
    args = ["--persona", str(EXAMPLES / "rivescript_bot.json"), *persona_args(root, files)]
    proc = start_server_process(*args, log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


@pytest.fixture(scope="module")
def ollama_client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.base_url)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- an answer that breaks off ----------------------------------------------------------------------------------


def test_openai_chat_stream_raises_after_the_text_sent(client: openai.OpenAI, server: ServerProcess) -> None:
    received: list[str] = []
    stream = client.chat.completions.create(model="Breaks", stream=True, messages=ask("count"))
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            assert chunk.choices[0].finish_reason is None  # never a normal end
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "One two "
    assert "broke off" in caught.value.message
    assert caught.value.body["code"] == "solver_failed"  # type: ignore[index]
    assert "failed mid-answer" in server.log()


def test_the_stream_ends_with_the_error_event_then_done(server: ServerProcess) -> None:
    body = {"model": "Breaks", "stream": True, "messages": ask("count")}
    raw = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=30).text
    events = [e.removeprefix("data: ") for e in raw.strip().split("\n\n")]
    assert events[-1] == "[DONE]"
    error = orjson.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "server_error"


def test_completions_stream_raises(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="Breaks", stream=True, prompt="count")
    received: list[str] = []
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in stream:
            received.append(chunk.choices[0].text)
    assert "".join(received) == "One two "


def test_responses_stream_ends_with_response_failed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="Breaks", stream=True, input="count"))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None and "broke off" in last.response.error.message
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "One two "
    assert not any(e.type == "response.completed" for e in events)
    with client.responses.stream(model="Breaks", input="count") as stream, pytest.raises(RuntimeError):
        stream.get_final_response()


@pytest.mark.parametrize("route", ["chat", "generate"])
def test_ollama_stream_raises(ollama_client: ollama.Client, route: str) -> None:
    received: list[str] = []
    with pytest.raises(ollama.ResponseError, match="broke off"):
        if route == "chat":
            for part in ollama_client.chat(model="Breaks", messages=ask("count"), stream=True):
                assert not part.done
                received.append(part.message.content or "")
        else:
            for part in ollama_client.generate(model="Breaks", prompt="count", stream=True):
                assert not part.done
                received.append(part.response)
    assert "".join(received) == "One two "


def test_a_whole_answer_that_broke_off_is_a_502(client: openai.OpenAI, ollama_client: ollama.Client) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="Breaks", messages=ask("count"))
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "solver_failed"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="Breaks", input="count")
    with pytest.raises(ollama.ResponseError) as failed:
        ollama_client.chat(model="Breaks", messages=ask("count"), stream=False)
    assert failed.value.status_code == 502 and "broke off" in failed.value.error


# -- no solver answers ------------------------------------------------------------------------------------------


def test_rivescript_bot_apologises_for_a_factual_question(client: openai.OpenAI, server: ServerProcess) -> None:
    completion = client.chat.completions.create(model="rivescript_bot", messages=ask(FACTUAL))
    assert completion.choices[0].message.content in ENGLISH
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model_extra and completion.model_extra["solver"] is None
    assert "persona 'rivescript_bot': no solver answered" in server.log()
    streamed = client.chat.completions.create(model="rivescript_bot", stream=True, messages=ask(FACTUAL))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) in ENGLISH


def test_the_apology_is_in_the_askers_language(server: ServerProcess) -> None:
    body = {"model": "rivescript_bot", "messages": ask("o que é a velocidade da luz?"), "stream": False,
            "lang": "pt"}
    reply = httpx.post(server.base_url + "/api/chat", json=body, timeout=30).json()
    assert reply["message"]["content"] in PORTUGUESE


def test_on_no_answer_error_is_a_422(client: openai.OpenAI, ollama_client: ollama.Client,
                                     server: ServerProcess) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="Strict", messages=ask(FACTUAL))
    assert caught.value.body["code"] == "no_answer"  # type: ignore[index]
    with pytest.raises(ollama.ResponseError) as failed:
        ollama_client.chat(model="Strict", messages=ask(FACTUAL), stream=False)
    assert failed.value.status_code == 422
    raw = httpx.post(server.base_url + "/api/generate", json={"model": "Strict", "prompt": FACTUAL,
                                                               "stream": False}, timeout=30)
    assert raw.status_code == 422 and set(raw.json()) == {"error"}
    # Chit-chat still answers.
    assert client.chat.completions.create(model="Strict", messages=ask("hello")).choices[0].message.content


def test_on_no_answer_error_in_a_stream(client: openai.OpenAI, ollama_client: ollama.Client) -> None:
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(model="Strict", stream=True, messages=ask(FACTUAL)):
            pass
    assert caught.value.body["code"] == "no_answer"  # type: ignore[index]
    events = list(client.responses.create(model="Strict", stream=True, input=FACTUAL))
    assert events[-1].type == "response.failed"
    with pytest.raises(ollama.ResponseError, match="could answer"):
        for _ in ollama_client.chat(model="Strict", messages=ask(FACTUAL), stream=True):
            pass


def test_status_shows_the_setting(server: ServerProcess) -> None:
    personas = {p["name"]: p for p in httpx.get(server.base_url + "/status", timeout=10).json()["personas"]}
    assert personas["Strict"]["on_no_answer"] == "error"
    assert personas["rivescript_bot"]["on_no_answer"] == "apology"


def test_validate_warns_about_a_chain_that_may_not_answer() -> None:
    result = run_cli("validate", str(EXAMPLES / "rivescript_bot.json"), str(EXAMPLES / "OldSchoolBot.json"))
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "rivescript_bot.json" in warnings[0], result.stdout
    assert "no solver in the chain always answers" in warnings[0]


def test_cli_ask_says_no_solver_answered(tmp_path: Path) -> None:
    path = tmp_path / "strict.json"
    path.write_bytes(orjson.dumps({"name": "S", "solvers": ["ovos-solver-rivescript-plugin"],
                                   "on_no_answer": "error"}))
    result = run_cli("ask", FACTUAL, "--persona", str(path))
    assert result.returncode == 1
    assert "No solver of persona 'S' could answer" in result.stderr and "Traceback" not in result.stderr
