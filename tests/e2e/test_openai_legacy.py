"""The original project's client snippet, verbatim in spirit, with `openai==0.28.1` in its own virtualenv."""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, ServerProcess, start_server_process

LEGACY_VENV = Path(os.environ.get("PERSONA_SERVER_LEGACY_VENV", ROOT / ".cache" / "openai-0.28.1"))

# The snippet from the original instructions; only api_base is filled in by the test.
SNIPPET = '''
import sys
import openai

openai.api_key = ""
openai.api_base = sys.argv[1]
stream = sys.argv[2] == "stream"

chat_completion = openai.ChatCompletion.create(
    model="",
    messages=[{"role": "user", "content": "tell me a joke"}],
    stream=stream,
)

if isinstance(chat_completion, dict):
    # not stream
    print(chat_completion.choices[0].message.content)
else:
    # stream
    for token in chat_completion:
        content = token["choices"][0]["delta"].get("content")
        if content != None:
            print(content, end="", flush=True)
    print()
'''

ERROR_SNIPPET = '''
import sys
import openai

openai.api_key = "x"
openai.api_base = sys.argv[1]
try:
    openai.ChatCompletion.create(model="", messages=[])
except openai.error.InvalidRequestError as exc:
    print("InvalidRequestError", exc.http_status, exc.user_message)
'''


def legacy_python() -> Path:
    python = LEGACY_VENV / "bin" / "python"
    marker = LEGACY_VENV / ".installed"
    if not marker.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(LEGACY_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "openai==0.28.1"], check=True, timeout=600)
        marker.write_text("openai==0.28.1\n")
    return python


@pytest.fixture(scope="module")
def python() -> Path:
    try:
        return legacy_python()
    except subprocess.CalledProcessError as exc:  # no package index reachable
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot install openai==0.28.1: {exc}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server_process("--persona", str(EXAMPLES / "rivescript_bot.json"),
                                log_path=tmp_path_factory.mktemp("legacy") / "server.log")
    yield proc
    proc.stop()


def run(python: Path, code: str, *args: str) -> str:
    result = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
@pytest.mark.parametrize("mode", ["stream", "plain"])
def test_original_snippet(python: Path, server: ServerProcess, suffix: str, mode: str) -> None:
    out = run(python, SNIPPET, server.base_url + suffix, mode)
    assert out.strip(), "the snippet printed no answer"
    assert "404" not in out


def test_legacy_client_understands_our_errors(python: Path, server: ServerProcess) -> None:
    out = run(python, ERROR_SNIPPET, server.base_url)
    assert out.startswith("InvalidRequestError 400")
    assert "messages" in out
