"""Fixtures for the LLM and composite solver tests: a scripted upstream and in-process personas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from persona_server.persona import Persona
from persona_server.solvers import registry

from .upstream import Upstream

MakePersona = Callable[[dict[str, Any]], Awaitable[Persona]]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def test_solvers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test-only solvers of `helpers.py` under a few names (each name has its own config block)."""
    for name in ("fixed-a", "fixed-b", "fixed-c", "fixed-d"):
        monkeypatch.setitem(registry.BUILTINS, name, f"{__package__}.helpers:FixedSolver")


