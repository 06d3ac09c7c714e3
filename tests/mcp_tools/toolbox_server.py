"""A tiny MCP server for the toolbox tests, written with the SDK's MCPServer (FastMCP in mcp 1.x).

    python toolbox_server.py            # over stdio
    python toolbox_server.py http PORT  # streamable HTTP at http://127.0.0.1:PORT/mcp

With TOOLBOX_LOG set, it appends one JSON line per event to that file: its start (pid, whether ORDERS_TOKEN
reached it) and every tool call, so tests can check the far side.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("orders")


def record(event: dict[str, object]) -> None:
    path = os.environ.get("TOOLBOX_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(event) + "\n")


@server.tool()
def lookup_order(order_id: str, ctx: Context) -> str:
    """Look up an order by its id: where it is and when it arrives."""
    event = {"call": "lookup_order", "order_id": order_id}
    authorization = (ctx.headers or {}).get("authorization")
    if authorization:  # over HTTP, the toolbox's `headers`
        event["authorization"] = authorization
    record(event)
    return f"Order {order_id} left the Tilburg depot on 3 March and arrives on Friday."


@server.tool()
def cancel_order(order_id: str) -> str:
    """Cancel an order."""
    record({"call": "cancel_order", "order_id": order_id})
    raise ToolError("the order database is read-only today")  # its message reaches the client


@server.tool()
async def track_parcel(order_id: str) -> str:
    """Track a parcel (this one never answers)."""
    record({"call": "track_parcel", "order_id": order_id})
    await asyncio.sleep(3600)
    return "never"


@server.tool()
def search_fixed_a(query: str) -> str:
    """A tool whose name a persona's solver tool also has."""
    record({"call": "search_fixed_a", "query": query})
    return f"the toolbox's answer to {query}"


if __name__ == "__main__":
    record({"start": os.getpid(), "token": os.environ.get("ORDERS_TOKEN", "")})
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
