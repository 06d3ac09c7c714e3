"""Text utilities shared by the chain and the wire protocols: word-sized pieces, token counts, and limits.

There is no tokenizer for rule-based answers, so a "token" here is a word or a punctuation mark with its
leading whitespace. `max_tokens` and usage counts use the same definition, so they agree with each other.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$", re.UNICODE)
_COUNTED = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # the same tokens without their whitespace
_PIECE = re.compile(r"\s*\S+|\s+$")


def split_pieces(text: str) -> list[str]:
    """Split text into word-sized pieces (each word with its leading whitespace), losing nothing."""
    return _PIECE.findall(text)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_COUNTED.findall(text))


class TextLimiter:
    """Applies `max_tokens` and `stop` sequences to a stream of text pieces.

    Feed pieces in, get the text that may be sent now. A tail that could be the start of a stop sequence is
    held back until the next piece decides it, so streaming and non-streaming give the same text.
    """

    __slots__ = ("_budget_used", "_emitted", "_held", "finish_reason", "max_tokens", "stop", "stop_sequence")

    def __init__(self, max_tokens: int | None = None, stop: list[str] | None = None) -> None:
        self.max_tokens = max_tokens
        self.stop = [s for s in (stop or []) if s]
        self.finish_reason: str | None = None
        # The stop sequence that ended the text, if one did (vendors report it apart from a natural end).
        self.stop_sequence: str | None = None
        self._held = ""
        self._emitted: list[str] = []
        self._budget_used = 0

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def tokens(self) -> int:
        """Tokens of the text let through so far (counted over the joined text, not per piece)."""
        return count_tokens(self.text)

    @property
    def text(self) -> str:
        """The text let through so far."""
        return "".join(self._emitted)

    def feed(self, piece: str) -> str:
        if self.done:
            return ""
        text = self._held + piece
        self._held = ""
        if self.stop:
            cut, first = min(((i, s) for s in self.stop if (i := text.find(s)) >= 0), default=(-1, None))
            if cut >= 0:
                self.finish_reason = "stop"
                out = self._emit(self._limit(text[:cut], final=True))
                if self.finish_reason == "stop":  # not cut by max_tokens first
                    self.stop_sequence = first
                return out
            keep = self._partial_stop_len(text)
            if keep:
                self._held = text[-keep:]
                text = text[:-keep]
        return self._emit(self._limit(text, final=False))

    def whole(self, pieces: list[str]) -> str:
        """The text a whole answer's pieces give: what feeding them one by one and finishing gives."""
        if self.max_tokens is None and not self.stop and not self._held:
            text = "".join(pieces)  # nothing to limit
            self._emit(text)
            self.finish_reason = "stop"
            return text
        parts = []
        for piece in pieces:
            parts.append(self.feed(piece))
            if self.done:
                break
        else:
            parts.append(self.finish())
        return "".join(parts)

    def finish(self) -> str:
        """Flush what is held back; the stream has ended."""
        if self.done:
            return ""
        text, self._held = self._held, ""
        out = self._emit(self._limit(text, final=True))
        if self.finish_reason is None:
            self.finish_reason = "stop"
        return out

    def _emit(self, text: str) -> str:
        if text:
            self._emitted.append(text)
        return text

    def _limit(self, text: str, *, final: bool) -> str:
        if self.max_tokens is None or not text:
            return text
        tokens = tokenize(text)
        if not final and tokens and tokens[-1][-1:].isalnum():
            # The last word may continue in the next piece: count it once it is whole.
            self._held = tokens.pop() + self._held
        out: list[str] = []
        for token in tokens:
            if token.strip():
                if self._budget_used >= self.max_tokens:
                    self.finish_reason = "length"
                    break
                self._budget_used += 1
            out.append(token)
        return "".join(out)

    def _partial_stop_len(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of a stop sequence."""
        best = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
