"""Splitting a file's text into chunks, as OpenAI's static strategy does: windows of `max_chunk_size_tokens`
tokens overlapping by `chunk_overlap_tokens` (the default, "auto", is 800 and 400).

Tokens are counted by a word-piece approximation, not a model's tokenizer: each run of word characters and each
other non-space character is one token. For English prose that is within about 20% of OpenAI's cl100k count,
and it needs no vocabulary. A chunk's text is the extracted text (see `extract.py`) from its first token to its
last, as it stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP = 400
# OpenAI's bounds for a static strategy.
MIN_MAX_TOKENS, MAX_MAX_TOKENS = 100, 4096

_PIECE = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Strategy:
    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap: int = DEFAULT_OVERLAP

    def as_json(self) -> dict[str, Any]:
        return {"type": "static", "static": {"max_chunk_size_tokens": self.max_tokens,
                                             "chunk_overlap_tokens": self.overlap}}


def parse_strategy(value: Any) -> Strategy:
    """OpenAI's `chunking_strategy` (absent, `{"type": "auto"}` or `{"type": "static", "static": {...}}`);
    ValueError with the reason otherwise."""
    if value is None:
        return Strategy()
    if not isinstance(value, dict) or value.get("type") not in ("auto", "static"):
        raise ValueError("chunking_strategy must be {\"type\": \"auto\"} or {\"type\": \"static\", ...}")
    if value["type"] == "auto":
        return Strategy()
    static = value.get("static")
    if not isinstance(static, dict):
        raise ValueError("chunking_strategy.static must be an object")
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if type(size) is not int or not MIN_MAX_TOKENS <= size <= MAX_MAX_TOKENS:
        raise ValueError(f"max_chunk_size_tokens must be an integer from {MIN_MAX_TOKENS} to {MAX_MAX_TOKENS}")
    if type(overlap) is not int or not 0 <= overlap <= size // 2:
        raise ValueError("chunk_overlap_tokens must be an integer from 0 to half of max_chunk_size_tokens")
    return Strategy(size, overlap)


def count_tokens(text: str) -> int:
    return sum(1 for _ in _PIECE.finditer(text))


def chunk_spans(text: str, strategy: Strategy) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of each chunk; memory stays bounded by one window, whatever the text's size."""
    step = strategy.max_tokens - strategy.overlap
    starts: list[int] = []
    ends: list[int] = []
    emitted = False
    for match in _PIECE.finditer(text):
        starts.append(match.start())
        ends.append(match.end())
        if len(starts) == strategy.max_tokens:
            yield starts[0], ends[-1]
            emitted = True
            del starts[:step]
            del ends[:step]
    # What is left is new text, unless it is only the overlap the last chunk already holds.
    if starts and (not emitted or len(starts) > strategy.overlap):
        yield starts[0], ends[-1]


def windows(text: str, size: int) -> list[str]:
    """The text cut into pieces of at most `size` tokens: what one embedding can take in whole."""
    spans = [(m.start(), m.end()) for m in _PIECE.finditer(text)]
    if not spans:
        return [text]
    return [text[spans[i][0]:spans[min(i + size, len(spans)) - 1][1]] for i in range(0, len(spans), size)]
