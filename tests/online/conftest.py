"""Fixtures for the online solvers: a replay server of recorded API shapes, a shared client, personas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.replay import ReplayServer


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


