"""The knowledge solver through a real server process, the real `openai` client, and the scripted LLM upstream.

The test writes a folder (a markdown manual, a text file of notes, a two-page PDF made by hand) and serves three
personas over it: one answering from it (then a fixed fallback), one naming the same folder another way (an
absolute path, other options), and an LLM grounded on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from persona_server.knowledge import sqlite as knowledge_sqlite
from tests.conftest import ServerProcess, persona_args, start_server_process
from tests.llm.upstream import Reply, Upstream

from .documents import make_pdf

FALLBACK = "I found nothing about that."

MANUAL = """# Zephyr 3000 Grinder Manual

The Zephyr 3000 is a conical burr coffee grinder for home kitchens, with forty grind settings from
espresso to French press.

## Cleaning

Unplug the grinder before cleaning it. Remove the upper burr by turning it counter-clockwise, then brush
away the old grounds with the supplied brush. Never wash the burrs with water: they rust.

## Warranty

The Zephyr 3000 comes with a warranty of seven years covering the motor and the burrs. Keep your receipt,
because the warranty starts on the day of purchase.
"""

NOTES = """Office notes for the Lisbon team.

The password of the guest wifi network is written on the whiteboard in meeting room twelve.

The recycling bins in the basement are emptied every Thursday morning by the building staff.
"""

FAQ = """<!doctype html><html><head><title>FAQ</title><style>.launch { color: red }</style></head><body>
<script>const note = "The rocket launch code of the observatory is 4711, kept in the safe.";</script>
<h1>Observatory FAQ</h1>
<h2>Opening hours</h2>
<p>The observatory dome opens to visitors at nine in the evening on clear nights, from April to October.</p>
</body></html>
"""

GUIDE_PAGES = [
    ["Harbour Point lighthouse: the keeper's guide.", "Read this before your first night shift."],
    ["The lamp of the Harbour Point lighthouse must be lit thirty minutes before sunset.",
     "The keeper writes the wind speed into the log book every four hours."],
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("knowledge")
    docs = root / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    (docs / "notes.txt").write_text(NOTES, encoding="utf-8")
    (docs / "guide.pdf").write_bytes(make_pdf(GUIDE_PAGES))
    (docs / "faq.html").write_text(FAQ, encoding="utf-8")
    (docs / "picture.png").write_bytes(b"\x89PNG not a document")  # not indexed
    return root


@pytest.fixture(scope="module")
def server(root: Path, upstream: Upstream) -> Iterator[ServerProcess]:
    docs = root / "docs"
    failure = {"answers": [FALLBACK]}
    personas: dict[str, dict[str, Any]] = {
        # A relative path: taken from the persona file's folder.
        "docs.json": {"name": "Docs", "solvers": ["knowledge", "failure"],
                      "knowledge": {"paths": ["docs"], "poll_interval": 0.5}, "failure": failure},
        "again.json": {"name": "Again", "solvers": ["ovos-solver-knowledge-plugin", "failure"],
                       "ovos-solver-knowledge-plugin": {"paths": [str(docs) + "/"], "max_chars": 80},
                       "failure": failure},
        "grounded.json": {"name": "Grounded", "solvers": ["openai", "failure"], "failure": failure,
                          "openai": {"api_url": upstream.base_url, "model": "grounded", "key": "sk-test",
                                     "context_solvers": ["knowledge"]},
                          "knowledge": {"paths": ["docs"], "k": 2}},
    }
    args = persona_args(root, personas)
    proc = start_server_process(*args, log_path=root / "server.log",
                                env={"PERSONA_SERVER_CACHE": str(root / "cache")}, timeout=180)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)


def ask(client: openai.OpenAI, model: str, question: str) -> tuple[str, str, list[dict[str, str]]]:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content or "", reply.model_extra["solver"], reply.model_extra["sources"]


def database(root: Path) -> Path:
    files = sorted((root / "cache" / "knowledge").glob("*.sqlite"))
    assert len(files) == 1, files
    return files[0]


def query_db(root: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = knowledge_sqlite.connect(database(root))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    """Poll `check` until it returns something truthy (the polling interval is 0.5 s; the machine is loaded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


def test_a_question_is_answered_from_the_right_markdown_section(root: Path, client: openai.OpenAI) -> None:
    text, solver, sources = ask(client, "Docs", "How long is the warranty on the Zephyr 3000?")
    assert solver == "knowledge"
    assert text.startswith("The Zephyr 3000 comes with a warranty of seven years")
    assert sources == [{"title": "manual.md > Zephyr 3000 Grinder Manual > Warranty",
                        "url": (root / "docs" / "manual.md").as_uri()}]


def test_a_pdf_answer_names_its_page(root: Path, client: openai.OpenAI) -> None:
    text, solver, sources = ask(client, "Docs", "When must the lamp of the lighthouse be lit?")
    assert solver == "knowledge"
    assert "thirty minutes before sunset" in text
    assert sources == [{"title": "guide.pdf > page 2", "url": (root / "docs" / "guide.pdf").as_uri() + "#page=2"}]


def test_a_text_file_answer(root: Path, client: openai.OpenAI) -> None:
    text, _, sources = ask(client, "Docs", "Where can I find the guest wifi password?")
    assert "whiteboard in meeting room twelve" in text
    assert sources[0]["title"] == "notes.txt"


def test_html_is_read_without_its_scripts(root: Path, client: openai.OpenAI) -> None:
    text, _, sources = ask(client, "Docs", "When does the observatory dome open to visitors?")
    assert text.startswith("The observatory dome opens to visitors at nine in the evening")
    assert sources[0]["title"] == "faq.html > Observatory FAQ > Opening hours"
    text = ask(client, "Docs", "What is the rocket launch code of the observatory?")[0]
    assert "4711" not in text
    assert not query_db(root, "SELECT text FROM passages WHERE text LIKE '%4711%' OR text LIKE '%color%'")


def test_an_unrelated_question_moves_the_chain_on(client: openai.OpenAI) -> None:
    for question in ("What is the capital of Mongolia?", "Who won the football match yesterday?"):
        text, solver, sources = ask(client, "Docs", question)
        assert (text, solver, sources) == (FALLBACK, "failure", [])


def test_answers_are_trimmed_to_whole_sentences(client: openai.OpenAI) -> None:
    text, solver, _ = ask(client, "Again", "How do I clean the grinder?")
    assert solver == "ovos-solver-knowledge-plugin"
    assert text == "Unplug the grinder before cleaning it."  # max_chars 80: the next sentence does not fit


def test_two_personas_over_the_same_paths_share_one_index(root: Path, client: openai.OpenAI) -> None:
    # "docs" relative to the persona files and ".../docs/" absolute: one path set, one database, one row set.
    assert ask(client, "Again", "When are the recycling bins emptied?")[1] == "ovos-solver-knowledge-plugin"
    paths = sorted(row[0] for row in query_db(root, "SELECT path FROM files"))
    assert paths == sorted(str(root / "docs" / name) for name in ("faq.html", "guide.pdf", "manual.md", "notes.txt"))
    passages = query_db(root, "SELECT count(*), count(DISTINCT text) FROM passages")[0]
    assert passages[0] == passages[1] > 0  # each passage stored once
    assert query_db(root, "SELECT count(*) FROM passage_vectors")[0][0] == passages[0]


def test_an_added_edited_and_removed_file_is_picked_up_without_a_restart(root: Path,
                                                                        client: openai.OpenAI) -> None:
    question = "On which day does the bakery deliver the bread?"
    others = query_db(root, "SELECT id, text FROM passages ORDER BY id")
    schedule = root / "docs" / "schedule.md"
    schedule.write_text("# Deliveries\n\nThe bakery delivers the bread every Monday at six in the morning.\n")
    assert eventually(lambda: "Monday" in ask(client, "Docs", question)[0])
    _, solver, sources = ask(client, "Docs", question)
    assert solver == "knowledge" and sources[0]["title"] == "schedule.md > Deliveries"

    schedule.write_text("# Deliveries\n\nThe bakery delivers the bread every Friday at noon, not on Mondays.\n")
    assert eventually(lambda: "Friday" in ask(client, "Docs", question)[0])
    # Only that file was re-indexed: the other passages are the same rows as before.
    now = query_db(root, "SELECT id, text FROM passages ORDER BY id")
    assert [row for row in now if row in others] == others
    assert len(now) == len(others) + 1

    schedule.unlink()
    assert eventually(lambda: ask(client, "Docs", question)[1] != "knowledge"
                      or "bakery" not in ask(client, "Docs", question)[0])
    assert eventually(lambda: query_db(root, "SELECT id, text FROM passages ORDER BY id") == others)


def test_an_llm_is_grounded_on_the_best_passages(root: Path, upstream: Upstream, client: openai.OpenAI) -> None:
    upstream.script(Reply(tokens=["Seven", " years", "."]), model="grounded")
    reply = client.chat.completions.create(
        model="Grounded", messages=[{"role": "user", "content": "How long is the Zephyr 3000 warranty?"}])
    assert reply.choices[0].message.content == "Seven years."
    system = upstream.requests[-1].body["messages"][0]
    assert system["role"] == "system"
    assert "From manual.md > Zephyr 3000 Grinder Manual > Warranty:" in system["content"]
    assert "warranty of seven years covering the motor and the burrs" in system["content"]
    titles = [source["title"] for source in reply.model_extra["sources"]]
    assert titles[0] == "manual.md > Zephyr 3000 Grinder Manual > Warranty"
    assert len(titles) <= 2  # k = 2


def test_the_index_reports_its_files_in_the_server_log(server: ServerProcess) -> None:
    log = server.log()
    assert "passages from 4 files" in log
    assert json.dumps("sk-test")[1:-1] not in log
