"""Fixtures for the online solvers: a replay server of recorded API shapes, a shared client, personas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from persona_server.persona import Persona, parse_persona
from tests.replay import ReplayServer


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy setting of the machine must never route loopback test traffic.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=True) as client:
        yield client


@pytest.fixture
async def make_persona(http: httpx.AsyncClient) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[Persona]]]:
    """`await make_persona(data)`: a started, ready Persona lending the test's shared client."""
    personas: list[Persona] = []

    async def make(data: dict[str, Any]) -> Persona:
        persona = Persona(parse_persona(data, source="<test>", default_name="test"), http=lambda: http)
        personas.append(persona)
        await persona.start()
        await persona.wait_ready()
        return persona

    yield make
    for persona in personas:
        await persona.close()
