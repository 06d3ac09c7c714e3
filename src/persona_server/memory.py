"""Per-conversation memory for solvers that see only the last message.

A persona turns it on with `"memory": N` (remember the last N question/answer pairs of each conversation), or
`"memory": {"turns": N, "ttl": SECONDS, "conversations": MAX}` for the bounds too.

The rule, in order:

1. A request whose history already holds question/answer pairs (clients that resend the whole chat, as OpenAI
   and Ollama clients do) keeps its own history: `query.memory` is set to its last N pairs, so question solvers
   see them too, and nothing is recalled from the server.
2. Otherwise the request gets the pairs remembered for its conversation: `query.memory` for question solvers,
   and, for chat-capable solvers, the pairs as user/assistant messages before the new question (after any
   system messages).
3. Every answer (non-blank, streamed to its end) is remembered for its conversation.

Only conversations with an explicit identity are remembered: the OpenAI/Responses `user` field (also accepted
as an extension by the Ollama routes), or an explicit session (`Query.conversation`, e.g. the CLI's). An
anonymous single-message request is never stored or recalled: its only identity would be its own text, and two
strangers who both open with "hello" must not see each other's answers. The key is `(persona,
Query.conversation_id)`, and each persona keeps its own store, so nothing crosses users or personas.

The store is bounded: least recently used conversations are dropped beyond `conversations`, and a conversation
untouched for `ttl` seconds is forgotten. It is bounded in bytes too (UTF-8 of questions and answers): a
conversation keeps at most `max_bytes` (its oldest pairs go first; a pair larger than that alone is truncated),
and all conversations of the persona together at most `total_bytes` (least recently used go first). It lives in
the server process; nothing is written to disk.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from persona_server.query import Message, Query

Pair = tuple[str, str]

DEFAULT_TTL = 3600.0
DEFAULT_CONVERSATIONS = 10_000
DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_TOTAL_BYTES = 64 * 1024 * 1024
_KEYS = ("turns", "ttl", "conversations", "max_bytes", "total_bytes")
_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True, slots=True)
class Hooks:
    """What a memory adds to one chain run: the query to run (remembered turns applied), a last step of preparing
    it that must be awaited (a memory plugin's recall), and what to call with the answer streamed to its end."""

    query: Query
    prepare: Callable[[Query], Awaitable[Query]] | None = None
    on_complete: Callable[[str], Awaitable[None] | None] | None = None


@dataclass(frozen=True, slots=True)
class MemorySettings:
    turns: int
    ttl: float = DEFAULT_TTL
    conversations: int = DEFAULT_CONVERSATIONS
    max_bytes: int = DEFAULT_MAX_BYTES  # per conversation
    total_bytes: int = DEFAULT_TOTAL_BYTES  # all conversations of one persona


def parse_memory_setting(value: Any) -> MemorySettings | None:
    """The persona-level `memory` value: a number of pairs (0 = off) or an object. Raises ValueError."""
    if value is None or value is False:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("'memory' must be 0 or more question/answer pairs")
        return MemorySettings(turns=value) if value else None
    if isinstance(value, dict):
        unknown = set(value) - set(_KEYS)
        if unknown:
            raise ValueError(f"'memory' has unknown keys: {', '.join(sorted(unknown))}")
        turns = value.get("turns", 5)
        ttl = value.get("ttl", DEFAULT_TTL)
        conversations = value.get("conversations", DEFAULT_CONVERSATIONS)
        if not _is_int(turns) or turns < 0:
            raise ValueError("'memory.turns' must be 0 or more question/answer pairs")
        if not _is_number(ttl) or ttl <= 0:
            raise ValueError("'memory.ttl' must be a number of seconds above 0")
        if not _is_int(conversations) or conversations < 1:
            raise ValueError("'memory.conversations' must be 1 or more")
        max_bytes = value.get("max_bytes", DEFAULT_MAX_BYTES)
        total_bytes = value.get("total_bytes", max(DEFAULT_TOTAL_BYTES, max_bytes if _is_int(max_bytes) else 0))
        if not _is_int(max_bytes) or max_bytes < 64:
            raise ValueError("'memory.max_bytes' must be 64 or more bytes")
        if not _is_int(total_bytes) or total_bytes < max_bytes:
            raise ValueError("'memory.total_bytes' must be at least 'memory.max_bytes'")
        if not turns:
            return None
        return MemorySettings(turns=turns, ttl=float(ttl), conversations=conversations, max_bytes=max_bytes,
                              total_bytes=total_bytes)
    raise ValueError("'memory' must be a number of question/answer pairs or an object {" + ", ".join(_KEYS) + "}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def history_pairs(messages: Sequence[Message]) -> list[Pair]:
    """The (question, answer) pairs of a history: each user message with the assistant message that follows it."""
    pairs: list[Pair] = []
    question: str | None = None
    for message in messages:
        if message.role == "user":
            question = message.content
        elif message.role == "assistant" and question is not None:
            pairs.append((question, message.content))
            question = None
    return pairs


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _truncate(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of text, cut at a character boundary."""
    if _size(text) <= limit:
        return text
    return text.encode()[:limit].decode("utf-8", "ignore")


def with_pairs(query: Query, remembered: list[Pair]) -> Query:
    """The query with remembered pairs applied: `query.memory`, and as messages after any system messages."""
    if not remembered:
        return query
    history = query.history
    system = [m for m in history if m.role in _SYSTEM_ROLES]
    rest = [m for m in history if m.role not in _SYSTEM_ROLES]
    recalled = [msg for q, a in remembered for msg in (Message("user", q), Message("assistant", a))]
    messages = [*system, *recalled, *rest, *query.messages[len(history):]]
    return dataclasses.replace(query, messages=messages, memory=remembered)


def bounded_pair(question: str, answer: str, limit: int) -> Pair:
    """A pair that fits `limit` bytes: one larger than the whole allowance keeps the start of each side, the
    question at most half."""
    question = _truncate(question, limit // 2)
    return question, _truncate(answer, limit - _size(question))


@dataclass(slots=True)
class _Conversation:
    pairs: deque[Pair]
    used: float
    size: int = 0  # UTF-8 bytes of its pairs


class ConversationMemory:
    """The recent question/answer pairs of each conversation with one persona (LRU + TTL bounded)."""

    def __init__(self, settings: MemorySettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._conversations)

    def recall(self, key: str) -> list[Pair]:
        self._expire()
        conversation = self._conversations.get(key)
        if conversation is None:
            return []
        conversation.used = self._clock()
        self._conversations.move_to_end(key)
        return list(conversation.pairs)

    @property
    def size(self) -> int:
        """UTF-8 bytes of every question and answer kept."""
        return self._size

    def remember(self, key: str, question: str, answer: str) -> None:
        self._expire()
        conversation = self._conversations.get(key)
        if conversation is None:
            conversation = _Conversation(deque(), self._clock())
            self._conversations[key] = conversation
        self._add(conversation, question, answer)
        conversation.used = self._clock()
        self._conversations.move_to_end(key)
        self._bound()

    def _add(self, conversation: _Conversation, question: str, answer: str) -> None:
        limit = self.settings.max_bytes
        question, answer = bounded_pair(question, answer, limit)
        conversation.pairs.append((question, answer))
        added = _size(question) + _size(answer)
        conversation.size += added
        self._size += added
        pairs = conversation.pairs
        while len(pairs) > self.settings.turns or conversation.size > limit:
            old_q, old_a = pairs.popleft()
            dropped = _size(old_q) + _size(old_a)
            conversation.size -= dropped
            self._size -= dropped

    def _bound(self) -> None:
        while self._conversations and (len(self._conversations) > self.settings.conversations
                                       or self._size > self.settings.total_bytes):
            self._drop(next(iter(self._conversations)))

    def _drop(self, key: str) -> None:
        self._size -= self._conversations.pop(key).size

    def adopt(self, other: ConversationMemory) -> None:
        """Carry the conversations of a persona's previous version over (a reloaded persona file)."""
        for key, conversation in other._conversations.items():
            if key in self._conversations:
                self._drop(key)
            copy = _Conversation(deque(), conversation.used)
            self._conversations[key] = copy
            for question, answer in conversation.pairs:
                self._add(copy, question, answer)
        self._bound()

    def _expire(self) -> None:
        # Ordered by last use, so the expired ones are at the front.
        deadline = self._clock() - self.settings.ttl
        while self._conversations:
            key, conversation = next(iter(self._conversations.items()))
            if conversation.used > deadline:
                break
            self._drop(key)

    # -- answering with memory ------------------------------------------------------------------------------

    @staticmethod
    def key(query: Query) -> str | None:
        """The conversation's memory key, or None for an anonymous request (never remembered)."""
        if query.conversation or query.user:
            return f"{query.persona}\0{query.conversation_id}"
        return None

    def prepare(self, query: Query) -> Query:
        """The query with this conversation's memory applied (see the module docstring for the rule)."""
        history = query.history
        own = history_pairs(history)
        if own:
            return dataclasses.replace(query, memory=own[-self.settings.turns:])
        key = self.key(query)
        return with_pairs(query, self.recall(key) if key else [])

    def hooks(self, query: Query) -> Hooks:
        """This conversation's memory for one chain run: the query with it applied, and the answer remembered once
        it has been streamed to its end."""
        key = self.key(query)
        prepared = self.prepare(query)
        if key is None:
            return Hooks(prepared)
        question = query.question

        def remember(answer: str) -> None:
            if question.strip() and answer.strip():
                self.remember(key, question, answer)

        return Hooks(prepared, on_complete=remember)
