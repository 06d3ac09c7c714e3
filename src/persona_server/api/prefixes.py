"""The original server's vendor-prefixed routes: `/openai/v1/...` and `/ollama/api/...`, beside `/v1` and `/api`.

They are mapped onto the unprefixed routes before routing, so every route of either protocol (including ones
added later) is served under its prefix too, with the same errors, keys and browser rules.
"""

from __future__ import annotations

# (prefix, what it stands for): "/openai/v1/chat/completions" -> "/v1/chat/completions".
VENDOR_PREFIXES: tuple[tuple[str, str], ...] = (("/openai/v1", "/v1"), ("/ollama/api", "/api"))
_STARTS = tuple(prefix + "/" for prefix, _ in VENDOR_PREFIXES)


def strip_vendor_prefix(path: str) -> str:
    """The unprefixed path of a vendor-prefixed one; any other path unchanged."""
    if not path.startswith(_STARTS):
        return path
    for prefix, target in VENDOR_PREFIXES:
        if path.startswith(prefix + "/"):
            return target + path[len(prefix):]
    return path
