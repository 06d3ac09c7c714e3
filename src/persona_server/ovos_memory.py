"""An installed OpenVoiceOS memory plugin (`opm.agents.memory`), named by a persona's `memory_module`.

OpenVoiceOS memory plugins keep each session's history themselves: `build_conversation_context(utterance,
session_id)` returns the messages for the next answer (typically their system prompt, the remembered turns and
the utterance), and `update_history([user, assistant], session_id)` records a finished exchange. We run one like
any plugin: constructed once with its persona block as `config`, every call in the worker pool under a timeout
(`timeout`, default 5 s) with at most `max_calls` running, and a failure never costs the answer: the request is
answered without recalled context, and the problem is logged and shown in `/status`.

Our rule for state holds here too: only a client-given identity (`user`, a CLI session) is a session; an
anonymous request is answered from its own messages and never recorded. A request that carries its own history
keeps it (nothing is recalled), and its exchange is still recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from persona_server import deadlines, secrets
from persona_server.memory import Hooks, history_pairs
from persona_server.query import Message, Query

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_CALLS = 4
_ROLES = frozenset({"system", "developer", "user", "assistant"})


class InstalledMemory:
    """The memory plugin of one persona: its state, and the chain run with it."""

    def __init__(self, name: str, config: dict[str, Any], *, persona: str,
                 run_blocking: Callable[..., Awaitable[Any]]) -> None:
        self.name = name
        self.config = config
        self.persona = persona
        self._run_blocking = run_blocking
        timeout, max_calls = config.get("timeout"), config.get("max_calls")
        self.timeout = float(timeout) if _positive(timeout) else DEFAULT_TIMEOUT
        self.max_calls = int(max_calls) if _positive(max_calls) and float(max_calls).is_integer() else DEFAULT_MAX_CALLS
        self.engine: Any = None
        self.state = "loading"
        self.error: str | None = None
        self.last_error: str | None = None
        self._running = 0
        self._lock = threading.Lock()
        self._updates: set[asyncio.Task[None]] = set()
        self.loaded = asyncio.Event()

    async def load(self) -> None:
        try:
            await self._load()
        finally:
            self.loaded.set()

    async def _load(self) -> None:
        from persona_server.solvers import ovos

        try:
            plugin = ovos.find_memory(self.name)
            if plugin is None:
                raise LookupError(f"no installed memory plugin is named {self.name!r} (opm.agents.memory; "
                                  f"{ovos.EXTRA_HINT}, then install its package)")
            factory = plugin.load()
            config = self.config
            self.engine = await self._call(lambda: factory(config=config))
        except Exception as exc:
            self.state, self.error = "error", _describe(exc, self.timeout)
            log.warning("persona %r: memory_module %r cannot start (%s); serving without memory", self.persona,
                        self.name, secrets.redact(self.error))
            return
        self.state = "ready"

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state}
        for key, value in (("error", self.error), ("last_error", self.last_error)):
            if value:
                out[key] = secrets.redact(value)
        return out

    async def _call(self, func: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            with self._lock:
                if self._running >= self.max_calls:
                    raise RuntimeError(f"{self._running} earlier calls have not returned")
                self._running += 1
            try:
                return func()
            finally:
                with self._lock:
                    self._running -= 1

        async with deadlines.timeout(self.timeout):
            return await self._run_blocking(guarded)

    # -- answering with it ----------------------------------------------------------------------------------

    def hooks(self, query: Query) -> Hooks:
        """The plugin's memory for one chain run: its recall awaited before the first turn, the answer recorded."""
        session = query.conversation_id
        if session is None or self.engine is None:
            return Hooks(query)
        question = query.question

        def remember(answer: str) -> None:
            if question.strip() and answer.strip():
                task = asyncio.get_running_loop().create_task(self._record(session, question, answer))
                self._updates.add(task)
                task.add_done_callback(self._updates.discard)

        async def prepare(query: Query) -> Query:
            return await self._prepare(query, session)

        return Hooks(query, prepare=prepare, on_complete=remember)

    async def _prepare(self, query: Query, session: str) -> Query:
        history = query.history
        if history_pairs(history):
            return query
        engine, question = self.engine, query.question
        try:
            context = await self._call(lambda: engine.build_conversation_context(question, session))
            recalled = _messages(context)
        except Exception as exc:
            self._failed("build_conversation_context", exc)
            return query
        if not recalled or recalled[-1].role != "user":
            recalled.append(Message("user", question))
        client_system = [m for m in history if m.role in ("system", "developer")]
        messages = [*client_system, *recalled]
        return dataclasses.replace(query, messages=messages, memory=history_pairs(recalled[:-1]))

    async def _record(self, session: str, question: str, answer: str) -> None:
        engine = self.engine
        exchange = _plugin_messages([Message("user", question), Message("assistant", answer)])
        try:
            await self._call(lambda: engine.update_history(exchange, session))
        except Exception as exc:
            self._failed("update_history", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.last_error = f"{what}: {_describe(exc, self.timeout)}"
        log.warning("persona %r: memory_module %r: %s", self.persona, self.name, secrets.redact(self.last_error))

    async def close(self) -> None:
        for task in list(self._updates):
            task.cancel()


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _messages(context: Any) -> list[Message]:
    """A plugin's context (AgentMessages or role/content dicts) as our messages."""
    if not isinstance(context, list | tuple):
        raise TypeError(f"build_conversation_context returned {type(context).__name__}, not a list of messages")
    out = []
    for item in context:
        role = item.get("role") if isinstance(item, dict) else getattr(item, "role", None)
        content = item.get("content") if isinstance(item, dict) else getattr(item, "content", None)
        role = getattr(role, "value", role)
        if not isinstance(role, str) or not isinstance(content, str):
            raise TypeError("build_conversation_context returned an item that is not a message")
        if role in _ROLES:
            out.append(Message(role, content))
    return out


def _plugin_messages(messages: list[Message]) -> list[Any]:
    agents = sys.modules.get("ovos_plugin_manager.templates.agents")
    if agents is None:
        return [{"role": m.role, "content": m.content} for m in messages]
    return [agents.AgentMessage(role=agents.MessageRole(m.role), content=m.content) for m in messages]
