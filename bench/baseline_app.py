"""The baseline of the throughput benchmark: bare Starlette + orjson returning a canned chat completion.

It does no parsing, no validation and no persona work: the ceiling our server's overhead is measured against.
Run with: uvicorn bench.baseline_app:app --port 8401 --log-level warning --no-access-log
"""

from __future__ import annotations

import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CANNED = "Hello from the benchmark."


async def chat(request: Request) -> Response:
    await request.body()
    return Response(orjson.dumps({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CANNED}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6},
    }), media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
