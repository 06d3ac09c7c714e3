"""A stand-in LLM server for benchmarks: an OpenAI-compatible chat endpoint that takes a fixed time to answer.

    uvicorn bench.slow_upstream:app --port 8402      (delay from BENCH_UPSTREAM_DELAY, default 1 s)

It answers every request after the delay, streamed (SSE, a few tokens at once) or not.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DELAY = float(os.environ.get("BENCH_UPSTREAM_DELAY", "1.0"))
TOKENS = ["The", " upstream", " has", " answered", "."]


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    data = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": int(time.time()), "model": "slow",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    await asyncio.sleep(DELAY)
    if not body.get("stream"):
        return Response(orjson.dumps({
            "id": "chatcmpl-up", "object": "chat.completion", "created": int(time.time()), "model": "slow",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(TOKENS)},
                         "finish_reason": "stop"}],
        }), media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        yield _chunk({"role": "assistant", "content": ""})
        for token in TOKENS:
            yield _chunk({"content": token})
        yield _chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
