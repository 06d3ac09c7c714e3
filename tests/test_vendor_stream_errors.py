"""An answer that fails mid-stream ends each vendor's stream with that vendor's own error event.

These drive the translators with an answer stream that raises the chain's AnswerFailed after its first piece, as
it does when the answering solver breaks off mid-answer (tests/e2e/test_faults.py has such failures end to end
for the OpenAI and Ollama streams).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer

from persona_server.api import anthropic, bedrock, gemini
from persona_server.chain import AnswerFailed
from persona_server.query import Query

FAILED = "The answer of solver 'broken' broke off."


class FailingStream:
    solver = "broken"
    sources: list[Any] = []
    finish_reason = "stop"
    stop_sequence = None
    tokens = 1

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        yield "Hello"
        raise AnswerFailed(FAILED, solver="broken")


class FailingPersona:
    name = "Broken"

    def stream(self, query: Query) -> FailingStream:
        return FailingStream()


QUERY = Query.from_text("hi")


async def test_anthropic_stream_ends_with_an_error_event() -> None:
    batches = [b async for b in anthropic.message_events(FailingPersona(), QUERY, 1, 15.0)]  # type: ignore[arg-type]
    events = [event for batch in batches for event in batch]
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                             "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "api_error", "message": FAILED}}


async def test_gemini_stream_ends_with_an_error_chunk() -> None:
    chunks = [c async for c in gemini._chunks(FailingPersona(), QUERY, 1, 15.0)]  # type: ignore[arg-type]
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["text"] == "Hello"  # type: ignore[index]
    assert chunks[-1] == {"error": {"code": 502, "message": FAILED, "status": "INTERNAL"}}


async def _frames(stream: AsyncIterator[bytes]) -> list[Any]:
    buffer = EventStreamBuffer()
    async for data in stream:
        buffer.add_data(data)
    return list(buffer)


async def test_bedrock_streams_end_with_an_exception_message() -> None:
    converse = await _frames(bedrock._converse_events(FailingPersona(), QUERY, 1, 15.0))  # type: ignore[arg-type]
    assert [m.headers.get(":event-type") for m in converse] == ["messageStart", "contentBlockDelta", None]
    last = converse[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "modelStreamErrorException"
    assert orjson.loads(last.payload) == {"message": FAILED}

    invoke = await _frames(bedrock._invoke_events(FailingPersona(), QUERY, 1, 15.0))  # type: ignore[arg-type]
    chunks = [orjson.loads(base64.b64decode(orjson.loads(m.payload)["bytes"])) for m in invoke[:-1]]
    assert [c["type"] for c in chunks] == ["message_start", "content_block_start", "content_block_delta"]
    assert invoke[-1].headers[":exception-type"] == "modelStreamErrorException"
