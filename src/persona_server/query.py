"""The internal request and answer model shared by every wire protocol and every solver.

A request of any protocol (OpenAI chat, OpenAI completion, Ollama, the CLI) becomes one `Query`; a persona
answers it with a stream of text pieces plus metadata (which solver answered, sources).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from persona_server.tooling import ToolCall, Tooling

# Earlier user turns a stateless solver replays to rebuild a conversation's variables; older ones are not read.
MAX_EARLIER_TURNS = 32

Role = Literal["system", "user", "assistant", "tool", "developer"]


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    # Plain turns carry no tool calls: class-level defaults keep the common message two fields (it is built
    # for every request); `ToolTurn` has them for real.
    tool_calls: ClassVar[tuple[ToolCall, ...]] = ()
    tool_call_id: ClassVar[str | None] = None


@dataclass(frozen=True, slots=True)
class ToolTurn(Message):
    """An assistant turn that called tools (`tool_calls`), or a tool's result for one call (`tool_call_id`)."""

    tool_calls: tuple[ToolCall, ...] = ()  # type: ignore[misc]
    tool_call_id: str | None = None  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Source:
    """Where an answer came from (a page title and its URL)."""

    title: str
    url: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url}


@dataclass(slots=True)
class Query:
    """One question to a persona: the chat history plus the caller's preferences."""

    messages: list[Message]
    lang: str = "en"
    units: Literal["metric", "imperial"] = "metric"
    # The asker's IANA time zone (the `timezone` extension); None means the persona's or the server's.
    timezone: str | None = None
    # Generation hints: LLM solvers pass them upstream; the chain applies max_tokens/stop to any answer.
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    # Who is asking: the OpenAI `user` field, an Ollama/CLI session; None means "derive from the history".
    user: str | None = None
    persona: str = ""
    # An explicit conversation id, e.g. an Ollama/CLI session.
    conversation: str | None = None
    # The full query a trimmed copy for a question solver was made from: the copy keeps the original's identity.
    origin: Query | None = None
    # Recent (question, answer) pairs of this conversation, oldest first, when the persona has `memory` on
    # (see persona_server.memory): question solvers see only the last message, this is what came before.
    memory: list[tuple[str, str]] = field(default_factory=list)
    # Client tools and the requested answer format (persona_server.tooling); None for a plain request.
    tooling: Tooling | None = None

    @property
    def question(self) -> str:
        """The last user message: what question solvers answer."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @property
    def history(self) -> list[Message]:
        """Every message before the last user message."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return self.messages[:index]
        return list(self.messages)

    @property
    def system_prompt(self) -> str:
        return "\n".join(m.content for m in self.messages if m.role in ("system", "developer"))

    @property
    def lang_code(self) -> str:
        """The primary language subtag in lower case: "pt-BR" -> "pt"."""
        return self.lang.replace("_", "-").split("-")[0].lower() or "en"

    @property
    def conversation_id(self) -> str | None:
        """The key of this conversation's server-side state, or None for an anonymous request.

        Only an identity the client gave keys state: an explicit conversation (CLI session) or the `user` field,
        per persona. Without one the request is stateless: solvers derive what they need from its own messages,
        so two strangers who open with the same words never share anything (see README, "Conversations").
        """
        if self.conversation:
            return self.conversation
        if self.origin is not None:
            return self.origin.conversation_id
        if self.user:
            return hashlib.sha256(f"user\0{self.persona}\0{self.user}".encode()).hexdigest()[:24]
        return None

    @property
    def earlier_user_turns(self) -> list[str]:
        """What the user said before the last message, at most the last `MAX_EARLIER_TURNS` of it (from the full
        history, for a trimmed question query): what stateless solvers replay to rebuild a conversation."""
        full = self.origin if self.origin is not None else self
        return [m.content for m in full.history if m.role == "user"][-MAX_EARLIER_TURNS:]

    @property
    def earlier_answers(self) -> list[str]:
        """What the assistant answered before the last message."""
        full = self.origin if self.origin is not None else self
        return [m.content for m in full.history if m.role == "assistant"]

    def for_question_solver(self) -> Query:
        """A copy holding only the last user message, for solvers that are not chat-capable."""
        if len(self.messages) == 1 and self.messages[0].role == "user":
            return self  # already just the question (most requests)
        # Spelled out rather than dataclasses.replace: this runs for every request.
        return Query(
            messages=[Message("user", self.question)], lang=self.lang, units=self.units,
            max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, stop=self.stop,
            user=self.user, persona=self.persona, conversation=self.conversation, origin=self, memory=self.memory,
            timezone=self.timezone, tooling=self.tooling,
        )

    @classmethod
    def from_text(cls, text: str, **kwargs: object) -> Query:
        return cls(messages=[Message("user", text)], **kwargs)  # type: ignore[arg-type]


@dataclass(slots=True)
class Answer:
    """A whole answer: the joined stream plus its metadata."""

    text: str
    solver: str | None = None
    sources: list[Source] = field(default_factory=list)
    finish_reason: str = "stop"
    tool_calls: list[ToolCall] = field(default_factory=list)
