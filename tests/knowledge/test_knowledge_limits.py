"""The knowledge solver's bounds, its behaviour without the `knowledge` extra, and one index under `--workers`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from persona_server.knowledge import sqlite as knowledge_sqlite
from tests.conftest import EXAMPLES, ROOT, ServerProcess, persona_args, run_cli, start_server_process

FALLBACK = "Nothing about that here."
FAILURE = {"answers": [FALLBACK]}


def persona(name: str, folder: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "solvers": ["knowledge", "failure"], "failure": FAILURE,
            "knowledge": {"paths": [folder], **options}}


def section(title: str, text: str) -> str:
    return f"# {title}\n\n{text}\n\n"


def databases(cache: Path) -> dict[str, Path]:
    """Indexed folder -> its database file."""
    found: dict[str, Path] = {}
    for path in (cache / "knowledge").glob("*.sqlite"):
        conn = knowledge_sqlite.connect(path)
        try:
            paths = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'paths'").fetchone()[0])
        finally:
            conn.close()
        found[Path(paths[0]).name] = path
    return found


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = knowledge_sqlite.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("knowledge-limits")
    for name, files in {
        "three": {f"{n}.md": section(f"Topic {n}", f"The {n} planet of the Vega system is made of {n} crystals.")
                  for n in ("first", "second", "third")},
        "sizes": {"small.md": section("Small", "The small moon of Vega is called Tilde."),
                  "big.md": section("Big", "The giant comet of Vega is called Umlaut. " * 40)},
        "many": {"many.md": "".join(section(f"Part {n}", f"Part {n} of the saga tells of the river {n}.")
                                    for n in range(1, 6))},
    }.items():
        (root / name).mkdir()
        for filename, text in files.items():
            (root / name / filename).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    args = persona_args(root, {
        "few-files.json": persona("FewFiles", "three", max_files=2),
        "small-files.json": persona("SmallFiles", "sizes", max_file_size="1KiB"),
        "few-passages.json": persona("FewPassages", "many", max_passages=2),
    })
    proc = start_server_process(*args, log_path=root / "server.log", env={"PERSONA_SERVER_CACHE": str(root / "cache")},
                                timeout=180)
    yield proc
    proc.stop()


def ask(server: ServerProcess, model: str, question: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content or "", reply.model_extra["solver"]


def test_files_beyond_max_files_are_not_indexed(root: Path, server: ServerProcess) -> None:
    db = databases(root / "cache")["three"]
    assert sorted(Path(r[0]).name for r in rows(db, "SELECT path FROM files")) == ["first.md", "second.md"]
    assert "more than 2 files" in server.log()
    assert ask(server, "FewFiles", "What is the second planet of Vega made of?")[1] == "knowledge"
    assert ask(server, "FewFiles", "What is the third planet of Vega made of?")[0] != (
        "The third planet of the Vega system is made of third crystals.")


def test_files_beyond_max_file_size_are_skipped(root: Path, server: ServerProcess) -> None:
    db = databases(root / "cache")["sizes"]
    assert sorted((Path(p).name, n) for p, n in rows(db, "SELECT path, passages FROM files")) == [
        ("big.md", 0), ("small.md", 1)]
    assert "big.md: larger than 1024 bytes" in server.log()
    assert ask(server, "SmallFiles", "What is the small moon of Vega called?") == (
        "The small moon of Vega is called Tilde.", "knowledge")


def test_passages_beyond_max_passages_are_not_indexed(root: Path, server: ServerProcess) -> None:
    db = databases(root / "cache")["many"]
    assert rows(db, "SELECT count(*) FROM passages") == [(2,)]
    assert rows(db, "SELECT count(*) FROM passage_vectors") == [(2,)]
    assert "only 2 of its 5 passages indexed" in server.log()


def test_without_the_extra_the_server_answers_and_names_the_install(root: Path, tmp_path: Path) -> None:
    # A sqlite_vec that cannot be imported stands for an install without the `knowledge` extra.
    fake = tmp_path / "site"
    (fake / "sqlite_vec").mkdir(parents=True)
    (fake / "sqlite_vec" / "__init__.py").write_text("raise ImportError('No module named sqlite_vec')\n")
    args = persona_args(tmp_path, {"p.json": persona("NoExtra", str(root / "sizes"))})
    proc = start_server_process(*args, log_path=tmp_path / "server.log",
                                env={"PERSONA_SERVER_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(fake)})
    try:
        assert ask(proc, "NoExtra", "What is the small moon of Vega called?") == (FALLBACK, "failure")
        status = httpx.get(proc.base_url + "/status").json()
        solvers = {s["name"]: s for p in status["personas"] for s in p["solvers"]}
        assert solvers["knowledge"]["state"] == "error"
        assert "pip install 'persona-server[knowledge]'" in solvers["knowledge"]["error"]
    finally:
        proc.stop()


def pool_answers(one: Any) -> list[tuple[str, str]]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(8)))


def test_workers_share_one_index_and_never_see_half_an_update(root: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    facts = docs / "facts.md"
    facts.write_text(section("Ferry", "The ferry to the island leaves at version 0 past the hour."))
    (docs / "other.md").write_text(section("Lunch", "Lunch in the canteen is served from noon until two."))
    cache = tmp_path / "cache"
    args = persona_args(tmp_path, {"p.json": persona("Shared", "docs", poll_interval=0.3)})
    proc = start_server_process(*args, "--workers", "2", log_path=tmp_path / "server.log",
                                env={"PERSONA_SERVER_CACHE": str(cache)}, timeout=180)
    question = "When does the ferry to the island leave?"
    try:
        def one(_: int) -> tuple[str, str]:
            return ask(proc, "Shared", question)

        with ThreadPoolExecutor(4) as pool:
            for version in range(1, 6):
                facts.write_text(section("Ferry", f"The ferry to the island leaves at version {version} past "
                                                  "the hour."))
                for text, solver in pool.map(one, range(8)):
                    # Every answer is one whole version of the file, from whichever process answered.
                    assert solver == "knowledge", text
                    assert text.startswith("The ferry to the island leaves at version ") and text.endswith(
                        " past the hour."), text
        # And the last version reaches both processes (8 asks: both answer some, whichever gets each one).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all("version 5 " in t for t, _ in pool_answers(one)):
            time.sleep(0.3)
        assert all("version 5 " in t for t, _ in pool_answers(one))
        db = databases(cache)["docs"]
        assert len(list((cache / "knowledge").glob("*.sqlite"))) == 1
        assert sorted(Path(r[0]).name for r in rows(db, "SELECT path FROM files")) == ["facts.md", "other.md"]
        assert rows(db, "SELECT count(*) FROM passages") == [(2,)]
        assert rows(db, "SELECT count(*) FROM passage_vectors") == [(2,)]
    finally:
        proc.stop()


def test_the_example_persona_answers_from_this_projects_readme(tmp_path: Path) -> None:
    result = run_cli("ask", "--json", "--persona", str(EXAMPLES / "documents.json"),
                     "how do I run several worker processes", env={"PERSONA_SERVER_CACHE": str(tmp_path)}, timeout=180)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["solver"] == "ovos-solver-knowledge-plugin"
    assert answer["sources"][0]["url"] == (ROOT / "README.md").as_uri()
    # Whichever section of the README it is today (the README changes), it is about workers.
    assert answer["sources"][0]["title"].startswith("README.md > persona-server > ")
    assert "--workers" in answer["answer"]
