"""Many personas in one server: a directory of files, installed packages' personas, reloads, memory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from persona_server.catalog import Catalog, load_specs
from persona_server.query import Query
from persona_server.solvers import registry
from persona_server.solvers.base import Solver
from tests.conftest import ServerProcess, start_server_process

DIR_PERSONAS: dict[str, dict[str, Any]] = {
    "alpha.json": {"name": "Alpha", "solvers": ["failure"], "failure": {"answers": ["alpha answers"]}},
    "beta.json": {"name": "Beta", "solvers": ["test-echo"]},
    "gamma.json": {"name": "Gamma", "solvers": ["test-history"], "memory": 3},
    "gemini.json": {"name": "Gemini", "solvers": ["test-history"], "memory": 3},
}

PLUGIN_MODULE = '''
from pathlib import Path

DICT_BOT = {"name": "DictBot", "solvers": ["failure"], "failure": {"answers": ["from a dict"]}}
BROKEN = {"name": "Broken"}


def file_bot():
    return str(Path(__file__).with_name("filebot.json"))
'''


def write(path: Path, data: dict[str, Any] | str) -> None:
    """Write a file in one step (a rename), as editors do, so the watcher never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else orjson.dumps(data))
    os.replace(tmp, path)


def poll(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def model_ids(server: ServerProcess) -> list[str]:
    """The personas `/v1/models` lists (the built-in embedding model, listed last, left out)."""
    return [m["id"] for m in httpx.get(f"{server.base_url}/v1/models").json()["data"] if m["id"] != "all-minilm"]


def problems(server: ServerProcess) -> list[dict[str, str]]:
    return httpx.get(f"{server.base_url}/status").json()["problems"]  # type: ignore[no-any-return]


def chat(server: ServerProcess, model: str, text: str, user: str | None = None) -> tuple[str, str]:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    kwargs: dict[str, Any] = {"user": user} if user else {}
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kwargs)
    return reply.model, reply.choices[0].message.content or ""


@pytest.fixture(scope="module")
def entry_point_env(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> dict[str, str]:
    """plugin_env plus a package providing personas through the `persona_server.personas` entry-point group."""
    site = tmp_path_factory.mktemp("persona-site")
    dist = site / "persona_ep_test-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: persona-ep-test\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text(
        "[persona_server.personas]\n"
        "dictbot = persona_ep_test:DICT_BOT\nfilebot = persona_ep_test:file_bot\nbroken = persona_ep_test:BROKEN\n"
    )
    (site / "persona_ep_test.py").write_text(PLUGIN_MODULE)
    (site / "filebot.json").write_bytes(orjson.dumps(
        {"name": "FileBot", "solvers": ["failure"], "failure": {"answers": ["from a file"]}}))
    return {"PYTHONPATH": os.pathsep.join([str(site), plugin_env["PYTHONPATH"]])}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, entry_point_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("many")
    personas = root / "personas"
    personas.mkdir()
    for name, data in DIR_PERSONAS.items():
        write(personas / name, data)
    proc = start_server_process("--personas", str(personas), "--default-persona", "beta",
                                log_path=root / "server.log", env=entry_point_env)
    yield proc
    proc.stop()


# -- a directory of personas, and installed ones ----------------------------------------------------------------


def test_every_persona_is_listed(server: ServerProcess) -> None:
    assert model_ids(server) == ["Alpha", "Beta", "Gamma", "Gemini", "DictBot", "FileBot"]
    tags = [m["name"] for m in httpx.get(f"{server.base_url}/api/tags").json()["models"]]
    assert tags == ["Alpha:latest", "Beta:latest", "Gamma:latest", "Gemini:latest", "DictBot:latest",
                    "FileBot:latest", "all-minilm:latest"]


def test_model_chooses_the_persona_on_every_api(server: ServerProcess) -> None:
    assert chat(server, "alpha", "x") == ("Alpha", "alpha answers")
    assert chat(server, "BETA", "x") == ("Beta", "echo: x (1 messages)")
    assert chat(server, "dictbot", "x") == ("DictBot", "from a dict")
    assert chat(server, "filebot:latest", "x") == ("FileBot", "from a file")

    client = ollama.Client(host=server.base_url)
    reply = client.chat(model="alpha:latest", messages=[{"role": "user", "content": "x"}], stream=False)
    assert (reply.model, reply.message.content) == ("Alpha:latest", "alpha answers")
    assert client.generate(model="beta", prompt="y", stream=False).response == "echo: y (1 messages)"

    responses = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0).responses
    assert responses.create(model="DictBot", input="x").output_text == "from a dict"
    assert responses.create(model="Beta", input="z").output_text == "echo: z (1 messages)"


def test_default_persona_setting(server: ServerProcess) -> None:
    assert chat(server, "", "x") == ("Beta", "echo: x (1 messages)")
    assert chat(server, "gpt-4o", "x")[0] == "Beta"
    reply = ollama.Client(host=server.base_url).chat(model="llama3", messages=[{"role": "user", "content": "x"}],
                                                     stream=False)
    assert reply.model == "Beta:latest"


def test_a_broken_installed_persona_is_reported_not_fatal(server: ServerProcess) -> None:
    [problem] = problems(server)
    assert "broken" in problem["file"] and "missing 'solvers'" in problem["problem"]
    assert "missing 'solvers'" in server.log()


# -- memory ---------------------------------------------------------------------------------------------------------


def test_memory_within_a_conversation_not_across_users_or_personas(server: ServerProcess) -> None:
    _, first = chat(server, "gamma", "my name is Ann", user="ann")
    assert first == "user=my name is Ann"
    _, second = chat(server, "gamma", "what is my name?", user="ann")
    assert second == "user=my name is Ann | assistant=user=my name is Ann | user=what is my name?"
    # Another user, another persona, or no user at all: nothing remembered.
    assert chat(server, "gamma", "what is my name?", user="bob")[1] == "user=what is my name?"
    assert chat(server, "gemini", "what is my name?", user="ann")[1] == "user=what is my name?"
    assert chat(server, "gamma", "what is my name?")[1] == "user=what is my name?"


def test_memory_through_ollama_and_responses(server: ServerProcess) -> None:
    client = ollama.Client(host=server.base_url)
    first = httpx.post(f"{server.base_url}/api/chat", json={
        "model": "gemini", "user": "carol", "stream": False, "messages": [{"role": "user", "content": "I like tea"}],
    }).json()
    assert first["message"]["content"] == "user=I like tea"
    responses = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0).responses
    second = responses.create(model="gemini", input="what do I like?", user="carol").output_text
    assert second.startswith("user=I like tea | assistant=user=I like tea | user=what do I like?")
    # The official Ollama client sends no user: such requests are anonymous and remember nothing.
    anonymous = client.chat(model="gemini", messages=[{"role": "user", "content": "what do I like?"}], stream=False)
    assert anonymous.message.content == "user=what do I like?"


# -- reloading a directory ------------------------------------------------------------------------------------------


def test_reload_without_restart(start_server: Callable[..., ServerProcess], tmp_path: Path,
                                plugin_env: dict[str, str]) -> None:
    personas = tmp_path / "watched"
    personas.mkdir()
    write(personas / "one.json", {"name": "One", "solvers": ["failure"], "failure": {"answers": ["one v1"]}})
    write(personas / "two.json", {"name": "Two", "solvers": ["test-echo"]})
    server = start_server("--personas", str(personas), env=plugin_env)
    assert model_ids(server) == ["One", "Two"]

    # Edit: a new name and a new answer, picked up without a restart.
    write(personas / "one.json", {"name": "OnePrime", "solvers": ["failure"], "failure": {"answers": ["one v2"]}})
    poll(lambda: model_ids(server) == ["OnePrime", "Two"])
    assert chat(server, "oneprime", "x") == ("OnePrime", "one v2")
    assert chat(server, "", "x") == ("OnePrime", "one v2"), "the first file's persona stays the default"

    # Add and delete.
    write(personas / "three.json", {"name": "Three", "solvers": ["failure"], "failure": {"answers": ["three"]}})
    poll(lambda: "Three" in model_ids(server))
    assert chat(server, "three", "x") == ("Three", "three")
    (personas / "two.json").unlink()
    poll(lambda: model_ids(server) == ["OnePrime", "Three"])
    assert chat(server, "two", "x")[0] == "OnePrime", "an unknown name gets the default persona"

    # A broken edit keeps the previous version serving, and says so.
    write(personas / "one.json", "{not json")
    poll(lambda: bool(problems(server)))
    [problem] = problems(server)
    assert problem["file"].endswith("one.json")
    assert "invalid JSON" in problem["problem"]
    assert chat(server, "oneprime", "x") == ("OnePrime", "one v2")
    assert model_ids(server) == ["OnePrime", "Three"]
    assert "still serving the previous version of 'OnePrime'" in server.log()

    # Fixing it clears the problem.
    write(personas / "one.json", {"name": "OnePrime", "solvers": ["failure"], "failure": {"answers": ["one v3"]}})
    poll(lambda: chat(server, "oneprime", "x")[1] == "one v3")
    assert problems(server) == []


# -- the catalog in-process (no server): the reload rules -----------------------------------------------------------


class LifecycleSolver(Solver):
    """Records when it is loaded and closed, to check the order of a reload."""

    name = "catalogtest-lifecycle"
    events: list[tuple[str, int]] = []

    async def load(self) -> None:
        self.events.append(("load", id(self)))

    async def close(self) -> None:
        self.events.append(("close", id(self)))

    async def answer(self, query: Query) -> str:
        return "alive"


registry.register(LifecycleSolver)


def catalog_for(directory: Path, **kwargs: Any) -> Catalog:
    catalog = Catalog(load_specs(dirs=[directory]), watch_dirs=[directory], **kwargs)
    catalog.retire_grace = 0
    return catalog


async def test_a_name_taken_by_another_file_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"name": "A", "solvers": ["failure"]})
    write(tmp_path / "b.json", {"name": "B", "solvers": ["failure"]})
    catalog = catalog_for(tmp_path)
    try:
        write(tmp_path / "b.json", {"name": "a", "solvers": ["failure"]})
        await catalog.reload_file(tmp_path / "b.json")
        assert [p.name for p in catalog] == ["A", "B"]
        assert "already served" in catalog.problems[0]["problem"]
    finally:
        await catalog.close()


async def test_the_replaced_persona_is_loaded_before_and_closed_after(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"name": "A", "solvers": ["catalogtest-lifecycle"], "memory": 2})
    catalog = catalog_for(tmp_path)
    await catalog.start()
    try:
        old = catalog.get("a")
        assert old is not None
        await old.wait_ready()
        assert (await old.answer(Query.from_text("remember me", user="ann"))).text == "alive"
        LifecycleSolver.events.clear()
        write(tmp_path / "a.json", {"name": "A", "solvers": ["catalogtest-lifecycle", "failure"], "memory": 2})
        await catalog.reload_file(tmp_path / "a.json")
        new = catalog.get("a")
        assert new is not None and new is not old
        assert new.ready, "loaded before it was swapped in"
        assert catalog.default is new
        assert new.memory is not None and len(new.memory) == 1, "conversations carry over"
        assert LifecycleSolver.events == [("load", id(new.slots[0].solver))], "the old one still serves"
        for task in list(catalog._retiring):
            await task
        assert LifecycleSolver.events[-1] == ("close", id(old.slots[0].solver))
    finally:
        await catalog.close()


async def test_deleting_every_file_serves_the_built_in_persona(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"name": "A", "solvers": ["failure"]})
    catalog = catalog_for(tmp_path)
    await catalog.start()
    try:
        (tmp_path / "a.json").unlink()
        await catalog.reload_file(tmp_path / "a.json")
        assert [p.name for p in catalog] == ["default"]
        assert catalog.default.name == "default"
        assert catalog.get("a") is None
    finally:
        await catalog.close()
