"""Bounds that live in personas: memory in bytes, and persona files (only regular files, of bounded size and
nesting), through the real CLI and a real server watching a directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, run_cli

GOOD = {"solvers": ["failure"], "failure": {"answers": ["Sorry."]}}


def poll(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.1)


# -- memory ---------------------------------------------------------------------------------------------------


def test_memory_keeps_at_most_max_bytes_of_a_conversation(start_server: Callable[..., ServerProcess],
                                                          write_persona: Callable[..., Path],
                                                          plugin_env: dict[str, str]) -> None:
    persona = write_persona({"name": "mem", "solvers": ["test-history"], "memory": {"turns": 50, "max_bytes": 2000}})
    server = start_server("--persona", str(persona), env=plugin_env)
    url = server.base_url + "/v1/chat/completions"

    def ask(text: str) -> str:
        body = {"model": "mem", "user": "ann", "messages": [{"role": "user", "content": text}]}
        response = httpx.post(url, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]  # type: ignore[no-any-return]

    ask("Q" * 1_000_000)  # a 1 MB question (and, from this solver, a 1 MB answer)
    recalled = ask("next")
    # The solver lists every message it saw: the remembered pair, cut to 2000 bytes in all, then the question.
    assert recalled.startswith("user=" + "Q" * 1000 + " | assistant=user=QQQ")
    assert recalled.endswith(" | user=next")
    assert len(recalled) < 2100
    for n in range(3):
        ask(f"question {n} " + "x" * 600)
    last = ask("last")
    # Question 2 and its (long) answer fill the 2000 bytes: the older pairs went, oldest first.
    assert last.startswith("user=question 2 ")
    assert last.endswith(" | user=last") and len(last) < 2100


# -- persona files --------------------------------------------------------------------------------------------


def deep_json(levels: int) -> str:
    return json.dumps({"solvers": ["failure"], "deep": 0})[:-2] + "[" * levels + "]" * levels + "}"


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad persona file, and the problem it must be reported with."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    deep = tmp_path / "deep.json"
    deep.write_text(deep_json(1000))
    deeper = tmp_path / "deeper.json"
    deeper.write_text(deep_json(5000))  # beyond what orjson decodes at all
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**GOOD, "filler": "x" * 2_000_000}))
    return {"fifo": (fifo, "not a regular file (a FIFO)"), "zero": (zero, "not a regular file (a character device)"),
            "deep": (deep, "nested too deeply (more than 64 levels)"),
            "deeper": (deeper, "nested too deeply (more than 64 levels)"),
            "huge": (huge, "too large")}


def test_validate_reports_each_bad_file_in_one_line(bad_files: dict[str, tuple[Path, str]]) -> None:
    result = run_cli("validate", *(str(path) for path, _ in bad_files.values()), timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(bad_files)
    for line, (path, problem) in zip(lines, bad_files.values(), strict=True):
        assert line.startswith(f"{path}: {problem}")


@pytest.mark.parametrize("kind", ["fifo", "zero", "deep", "huge"])
def test_serve_and_ask_stop_with_one_line_and_status_2(bad_files: dict[str, tuple[Path, str]], kind: str) -> None:
    path, problem = bad_files[kind]
    for args in (["serve", "--persona", str(path), "--port", "1"], ["ask", "--persona", str(path), "hello"]):
        result = run_cli(*args, timeout=30)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"persona-server: {path}: {problem}")


def test_a_watched_directory_reports_bad_files_and_keeps_watching(start_server: Callable[..., ServerProcess],
                                                                  tmp_path: Path) -> None:
    directory = tmp_path / "personas"
    directory.mkdir()
    (directory / "good.json").write_text(json.dumps(GOOD))
    server = start_server("--personas", str(directory))

    def status() -> dict[str, object]:
        return httpx.get(server.base_url + "/status", timeout=10).json()  # type: ignore[no-any-return]

    os.mkfifo(directory / "fifo.json")
    (directory / "zero.json").symlink_to("/dev/zero")
    (directory / "deep.json").write_text(deep_json(1000))
    (directory / "huge.json").write_text(json.dumps({**GOOD, "filler": "x" * 2_000_000}))
    expected = {"fifo.json": "not a regular file (a FIFO)", "zero.json": "not a regular file (a character device)",
                "deep.json": "nested too deeply", "huge.json": "too large"}

    def all_reported() -> bool:
        found = {Path(p["file"]).name: p["problem"] for p in status()["problems"]}  # type: ignore[attr-defined]
        return set(found) == set(expected) and all(found[name].startswith(expected[name]) for name in expected)

    poll(all_reported)
    # The watcher still works: a new file is served.
    (directory / "later.json").write_text(json.dumps({**GOOD, "name": "later"}))
    poll(lambda: "later" in status()["models"])  # type: ignore[operator]
    assert httpx.get(server.base_url + "/health").status_code == 200
