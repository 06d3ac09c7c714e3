"""The internal request and answer model shared by every wire protocol and every solver.

A request of any protocol (OpenAI chat, OpenAI completion, Ollama, the CLI) becomes one `Query`; a persona
answers it with a stream of text pieces plus metadata (which solver answered, sources).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool", "developer"]


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


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
    def conversation_id(self) -> str:
        """A stable key for "this conversation", so per-conversation memory never leaks between two.

        An explicit user wins. Otherwise clients resend the whole history with every turn, so the first user
        message of the history (plus persona) identifies the conversation as it grows.
        """
        if self.conversation:
            return self.conversation
        if self.origin is not None:
            return self.origin.conversation_id
        if self.user:
            seed = f"user\0{self.persona}\0{self.user}"
        else:
            first = next((m.content for m in self.messages if m.role == "user"), "")
            system = self.system_prompt
            seed = f"history\0{self.persona}\0{system}\0{first}"
        return hashlib.sha256(seed.encode()).hexdigest()[:24]

    def for_question_solver(self) -> Query:
        """A copy holding only the last user message, for solvers that are not chat-capable."""
        if len(self.messages) == 1 and self.messages[0].role == "user":
            return self  # already just the question (most requests)
        # Spelled out rather than dataclasses.replace: this runs for every request.
        return Query(
            messages=[Message("user", self.question)], lang=self.lang, units=self.units,
            max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, stop=self.stop,
            user=self.user, persona=self.persona, conversation=self.conversation, origin=self, memory=self.memory,
            timezone=self.timezone,
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
