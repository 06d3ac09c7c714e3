"""The real CLI: serve, ask, chat, validate; broken files stop it with one line and no traceback."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from persona_server.solvers.failure import dialogs
from tests.conftest import EXAMPLES, ServerProcess, run_cli

Start = Callable[..., ServerProcess]
Write = Callable[..., Path]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{oops", "invalid JSON"), ('{"solvers": "failure"}', "'solvers' must be a list"), ("[]", "JSON object")],
)
@pytest.mark.parametrize("command", [[], ["ask", "hello"]])
def test_broken_persona_file_exits_with_one_line(write_persona: Write, content: str, problem: str,
                                                 command: list[str]) -> None:
    path = write_persona(content)
    result = run_cli(*command, "--persona", str(path), "--port", "1") if not command else run_cli(
        *command, "--persona", str(path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and problem in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_persona_file() -> None:
    result = run_cli("--persona", "/nonexistent.json")
    assert result.returncode != 0
    assert result.stderr.strip() == "persona-server: /nonexistent.json: no such file"


def test_ask_prints_one_answer() -> None:
    result = run_cli("ask", "tell", "me", "a", "joke", "--persona", str(EXAMPLES / "rivescript_bot.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "404" not in result.stdout


def test_ask_default_persona_in_portuguese() -> None:
    result = run_cli("ask", "--lang", "pt", "--json", "qual é o sentido da vida?")
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["persona"] == "default"
    assert data["answer"]
    if data["solver"] == "ovos-solver-failure-plugin":
        assert data["answer"] in dialogs("pt")


def test_chat_reads_lines_until_eof(write_persona: Write, plugin_env: dict[str, str]) -> None:
    persona = write_persona({"name": "Chatty", "solvers": ["test-history"]})
    result = run_cli("chat", "--persona", str(persona), input="first\nsecond\n", env=plugin_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        "Chatty> user=first",
        "Chatty> user=first | assistant=user=first | user=second",
    ]


def test_validate(write_persona: Write) -> None:
    good = run_cli("validate", str(EXAMPLES / "rivescript_bot.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok" in good.stdout
    bad_solver = write_persona({"solvers": ["ovos-solver-failure-plugin", "no-such-solver"],
                                "ovos-solver-failure-plugin": {"timeout": "soon"}})
    broken = write_persona("{nope")
    result = run_cli("validate", str(bad_solver), str(broken), str(EXAMPLES / "rivescript_bot.json"))
    assert result.returncode != 0
    out = result.stdout
    assert "unknown solver 'no-such-solver'" in out
    assert "timeout" in out
    assert f"{broken}: invalid JSON" in out
    assert "Traceback" not in result.stderr


def test_solvers_lists_builtins_and_aliases() -> None:
    result = run_cli("solvers")
    assert result.returncode == 0
    assert "ovos-solver-failure-plugin" in result.stdout.splitlines()
    assert "ovos-solver-wikipedia-plugin -> ovos-solver-plugin-wikipedia" in result.stdout


def test_original_instructions_serve_rivescript_bot(start_server: Start) -> None:
    """`ovos-persona-server --persona rivescript_bot.json`, as the original README says."""
    server = start_server("--persona", str(EXAMPLES / "rivescript_bot.json"))
    body = {"model": "", "messages": [{"role": "user", "content": "tell me a joke"}]}
    response = httpx.post(server.base_url + "/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["model"] == "rivescript_bot"
    assert response.json()["choices"][0]["message"]["content"]


def test_console_scripts_are_installed() -> None:
    bindir = Path(sys.executable).parent
    for name in ("persona-server", "ovos-persona-server"):
        script = shutil.which(name, path=str(bindir))
        assert script, f"{name} is not installed next to {sys.executable}"
        import subprocess

        result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "persona-server" in result.stdout


def test_non_loopback_without_key_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Checked in-process with the server's run replaced: tests never bind beyond 127.0.0.1."""
    from persona_server import cli, serving

    calls: list[dict] = []
    monkeypatch.setattr(serving, "run", lambda app, **kw: calls.append(kw) or 0)
    monkeypatch.setattr(cli, "setup_logging", lambda level, **kwargs: None)
    with caplog.at_level("WARNING"):
        assert cli.main(["--host", "0.0.0.0", "--port", "9999"]) == 0
    assert calls and calls[0]["host"] == "0.0.0.0" and calls[0]["port"] == 9999
    assert "without an API key" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        cli.main(["--host", "0.0.0.0", "--api-key", "k"])
        cli.main(["--host", "127.0.0.1"])
    assert "without an API key" not in caplog.text
