"""Installs the test plugins of fake_ovos_plugins.py as a package with entry points in OpenVoiceOS's groups.

The package is a real distribution (a `.dist-info` with `entry_points.txt`) on the server process's path, found
by `importlib.metadata` exactly as a pip-installed one is; the real plugins from the package index are installed
in the virtualenv by the `test` extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.upstream import Upstream

HERE = Path(__file__).resolve().parent

ENTRY_POINTS = {
    "neon.plugin.solver": {
        "test-question-plugin": "fake_ovos_plugins:EchoQuestionSolver",
        "test-raises-plugin": "fake_ovos_plugins:RaisesOnAnswer",
        "test-nonstring-plugin": "fake_ovos_plugins:ReturnsNonString",
        "test-hang-plugin": "fake_ovos_plugins:Hangs",
        "test-construct-plugin": "fake_ovos_plugins:BrokenOnConstruction",
        "test-import-plugin": "fake_ovos_broken_import:Plugin",
    },
    "opm.solver.question": {"test-streaming-plugin": "fake_ovos_plugins:StreamingQuestionSolver"},
    "opm.solver.chat": {"test-chat-solver": "fake_ovos_plugins:CountingChatSolver"},
    "opm.agents.chat": {"test-agent-plugin": "fake_ovos_plugins:EchoAgent"},
    "opm.agents.retrieval": {"test-retrieval-plugin": "fake_ovos_plugins:PassageRetrieval"},
    "opm.plugin.persona": {"Plugin Shipped Persona": "fake_ovos_plugins:PERSONA"},
    "opm.agents.memory": {"test-memory-plugin": "fake_ovos_plugins:SessionMemory",
                          "test-broken-memory": "fake_ovos_plugins:BrokenMemory"},
}


@pytest.fixture(scope="session")
def ovos_plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("ovos-plugin-site")
    dist = site / "persona_test_ovos_plugins-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: persona-test-ovos-plugins\nVersion: 0.0.1\n")
    sections = []
    for group, names in ENTRY_POINTS.items():
        sections.append(f"[{group}]\n" + "\n".join(f"{name} = {value}" for name, value in names.items()))
    (dist / "entry_points.txt").write_text("\n\n".join(sections) + "\n")
    for module in ("fake_ovos_plugins.py", "fake_ovos_broken_import.py"):
        (site / module).write_text((HERE / module).read_text())
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server
