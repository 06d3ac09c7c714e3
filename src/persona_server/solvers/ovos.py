"""Installed OpenVoiceOS plugins as solvers: found by entry point, run through one adapter per kind.

OpenVoiceOS packages register their plugins in five entry-point groups, and each kind is called its own way:

- `opm.agents.chat` (chat engines): `continue_chat(messages, session_id, lang, units)`; streams with
  `stream_tokens` (or `stream_chat`);
- `opm.solver.chat` (chat solvers): `get_chat_completion(messages, lang, units)`; `stream_chat_utterances`;
- `opm.agents.retrieval` (retrieval engines): `query(text, lang, k)`, whose best passage is the answer;
- `opm.solver.question` and `neon.plugin.solver` (question solvers): `spoken_answer(query, lang, units)`;
  `stream_utterances`.

Every plugin is constructed once, in the worker pool, with its persona block as `config`; every call runs in the
worker pool too (plugins block), is given `lang` and `units` where its signature takes them, and streams only
when the plugin's own class implements streaming (the templates' defaults merely split a whole answer). Chat kinds
get the whole history, as OpenAI-style role/content dicts or, for agent engines, OpenVoiceOS's `AgentMessage`;
question and retrieval kinds get the last user message. A plugin that raises, returns something that is not
text, or hangs is skipped by the chain like any solver. A hung call cannot be interrupted (it is a thread), so
each plugin may have at most `max_calls` calls running at once: a plugin that keeps hanging is refused, not
allowed to eat the worker pool.

Nothing here imports OpenVoiceOS: plugins bring `ovos-plugin-manager` themselves (`persona-server[ovos]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from persona_server.query import Query
from persona_server.solvers.base import BlockingSolver, Piece, SolverContext, SolverOptions

log = logging.getLogger(__name__)

Kind = Literal["chat-engine", "chat-solver", "retrieval", "question"]

# In order of preference: a package that registers one name in several groups (a question solver and a chat
# engine of the same brain) is run as the most capable kind.
GROUPS: tuple[tuple[str, Kind], ...] = (
    ("opm.agents.chat", "chat-engine"),
    ("opm.solver.chat", "chat-solver"),
    ("opm.agents.retrieval", "retrieval"),
    ("opm.solver.question", "question"),
    ("neon.plugin.solver", "question"),
)
MEMORY_GROUP = "opm.agents.memory"
PERSONA_GROUP = "opm.plugin.persona"

# Written before a name to ask for the installed plugin where a built-in has the same name.
PREFIX = "ovos:"
EXTRA_HINT = 'pip install "persona-server[ovos]"'

@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    name: str
    group: str
    kind: Kind
    value: str  # "module:attr"
    package: str | None

    def load(self) -> Any:
        for ep in entry_points(group=self.group, name=self.name):
            return ep.load()
        raise LookupError(f"entry point {self.name!r} is gone from {self.group}")


@cache
def installed_by_group() -> dict[str, list[InstalledPlugin]]:
    """Every installed plugin of the five solver groups (and memory plugins), by group, as registered."""
    groups: dict[str, list[InstalledPlugin]] = {}
    for group, kind in (*GROUPS, (MEMORY_GROUP, "question")):
        found = []
        for ep in entry_points(group=group):
            package = ep.dist.name if ep.dist is not None else None
            found.append(InstalledPlugin(ep.name, group, kind, ep.value, package))
        groups[group] = sorted(found, key=lambda p: p.name)
    return groups


@cache
def installed() -> dict[str, InstalledPlugin]:
    """Installed solver plugins by name; a name registered in several groups is its most capable kind."""
    by_name: dict[str, InstalledPlugin] = {}
    for group, _ in GROUPS:
        for plugin in installed_by_group()[group]:
            by_name.setdefault(plugin.name, plugin)
    return by_name


def find(name: str) -> InstalledPlugin | None:
    return installed().get(name.removeprefix(PREFIX))


def find_memory(name: str) -> InstalledPlugin | None:
    """An installed memory plugin (`opm.agents.memory`) by name."""
    return next((p for p in installed_by_group()[MEMORY_GROUP] if p.name == name.removeprefix(PREFIX)), None)


# -- calling plugin methods ---------------------------------------------------------------------------------------


def _defined_by_template(cls: type, method: str) -> bool:
    """Whether `cls` gets `method` from OpenVoiceOS's base classes (a default) rather than from the plugin."""
    for klass in cls.__mro__:
        if method in klass.__dict__:
            return klass.__module__.startswith("ovos_plugin_manager.")
    return True


def _implements(cls: Any, method: str) -> bool:
    return isinstance(cls, type) and callable(getattr(cls, method, None)) and not _defined_by_template(cls, method)


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a plugin method with the keyword arguments its signature takes (older plugins take fewer)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return func(*args, **kwargs)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return func(*args, **kwargs)


def _text(result: Any, what: str) -> str | None:
    """A plugin's answer as text: a string, or a message object's `content`; anything else is a failure."""
    if result is None or isinstance(result, str):
        return result
    content = getattr(result, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"{what} returned {type(result).__name__}, not text")


class PluginBusy(RuntimeError):
    pass


class InstalledPluginOptions(SolverOptions):
    # Every other key of the block is the plugin's config, passed as is.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    max_calls: int = Field(default=4, ge=1, le=64, description="calls of this plugin running at once")
    k: int = Field(default=3, ge=1, le=100, description="passages a retrieval engine is asked for")


class InstalledPluginSolver(BlockingSolver):
    """One installed OpenVoiceOS plugin. Subclassed per plugin by `solver_class`."""

    plugin: ClassVar[InstalledPlugin]
    factory: ClassVar[Callable[..., Any]]
    kind: ClassVar[Kind] = "question"
    can_stream: ClassVar[bool] = False
    speculative = False  # unknown cost: never started before its turn
    default_timeout = 15.0
    Options = InstalledPluginOptions
    options: InstalledPluginOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        # The block as written (our own keys too: plugins ignore what they do not know, as in OpenVoiceOS).
        self.config = options.model_dump(exclude_unset=True)
        self.engine: Any = None
        self._running = 0
        self._lock = threading.Lock()

    @property
    def streams(self) -> bool:
        return self.can_stream

    def load_sync(self) -> None:
        try:
            params = inspect.signature(self.factory).parameters
        except (TypeError, ValueError):
            params = None
        if params is None or "config" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                                        for p in params.values()):
            self.engine = self.factory(config=self.config)
        elif params:
            self.engine = self.factory(self.config)  # old plugins take it positionally
        else:
            self.engine = self.factory()

    # -- bounded calls in the worker pool -------------------------------------------------------------------

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        def guarded() -> Any:
            # Counted in the thread itself: a call cancelled before its thread started holds no place.
            with self._lock:
                if self._running >= self.options.max_calls:
                    raise PluginBusy(f"{self._running} earlier calls of {self.plugin.name!r} have not returned")
                self._running += 1
            try:
                return func(*args)
            finally:
                with self._lock:
                    self._running -= 1

        return await self.context.run_blocking(guarded)

    # -- what each kind is given and called with ------------------------------------------------------------

    def _session(self, query: Query) -> str:
        # Stateful engines key their state by session: only a client-given identity may share it.
        return query.conversation_id or f"anonymous-{uuid.uuid4().hex}"

    def _messages(self, query: Query) -> list[Any]:
        dicts = [{"role": m.role, "content": m.content} for m in query.messages]
        if self.kind != "chat-engine":
            return dicts
        agents = sys.modules.get("ovos_plugin_manager.templates.agents")
        if agents is None:
            return dicts
        roles = {role.value for role in agents.MessageRole}
        return [agents.AgentMessage(role=agents.MessageRole(d["role"]), content=d["content"])
                for d in dicts if d["role"] in roles]

    def _whole_call(self, query: Query) -> Callable[[], str | None]:
        engine, lang, units = self.engine, query.lang, query.units
        if self.kind == "chat-engine":
            messages, session = self._messages(query), self._session(query)
            return lambda: _text(_call(engine.continue_chat, messages, session_id=session, lang=lang, units=units),
                                 "continue_chat")
        if self.kind == "chat-solver":
            messages = self._messages(query)
            method = engine.get_chat_completion if hasattr(engine, "get_chat_completion") else engine.continue_chat
            return lambda: _text(_call(method, messages, lang=lang, units=units), "get_chat_completion")
        if self.kind == "retrieval":
            k = self.options.k
            return lambda: _best_passage(_call(engine.query, query.question, lang=lang, k=k, units=units))
        method = engine.spoken_answer if hasattr(engine, "spoken_answer") else engine.get_spoken_answer
        return lambda: _text(_call(method, query.question, lang=lang, units=units), "spoken_answer")

    def _stream_call(self, query: Query) -> Callable[[], Iterator[Any]]:
        engine, lang, units = self.engine, query.lang, query.units
        if self.kind == "chat-engine":
            messages, session = self._messages(query), self._session(query)
            method = engine.stream_tokens if _implements(type(engine), "stream_tokens") else engine.stream_chat
            return lambda: iter(_call(method, messages, session_id=session, lang=lang, units=units))
        if self.kind == "chat-solver":
            messages = self._messages(query)
            return lambda: iter(_call(engine.stream_chat_utterances, messages, lang=lang, units=units))
        return lambda: iter(_call(engine.stream_utterances, query.question, lang=lang, units=units))

    def _ready(self) -> None:
        if self.engine is None:
            raise RuntimeError(f"{self.plugin.name!r} is not constructed")

    async def answer(self, query: Query) -> str | None:
        self._ready()
        return await self._run(self._whole_call(query))  # type: ignore[no-any-return]

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        """The plugin's iterator, run by one call in the worker pool that hands each piece over as it comes.

        Closing this stream (a client gone, the chain's timeout) tells that call to stop after its current piece
        and close the plugin's generator; a plugin hung inside one piece keeps its place in `max_calls`.
        """
        self._ready()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        start = self._stream_call(query)

        def hand_over(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            iterator = start()
            try:
                for piece in iterator:
                    if stop.is_set():
                        break
                    hand_over(piece)
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()

        worker = asyncio.ensure_future(self._run(produce))
        # When the call ends, however it ends, the consumer learns it (an error raised before any piece too).
        worker.add_done_callback(lambda task: queue.put_nowait(
            _Ended(None if task.cancelled() else task.exception())))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Ended):
                    if item.error is not None:
                        raise item.error
                    return
                text = _text(item, "the stream")
                if text:
                    yield text
        finally:
            stop.set()


@dataclass(frozen=True, slots=True)
class _Ended:
    error: BaseException | None


def _best_passage(results: Any) -> str | None:
    """The highest-scoring passage of a retrieval engine's `[(passage, score), ...]`."""
    if results is None:
        return None
    try:
        items = list(results)
    except TypeError:
        raise TypeError(f"query returned {type(results).__name__}, not a list of (passage, score)") from None
    best: tuple[float, str] | None = None
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], int | float)):
            raise TypeError("query returned an item that is not a (passage, score) pair")
        if item[0].strip() and (best is None or item[1] > best[0]):
            best = (float(item[1]), item[0])
    return best[1] if best else None


_CLASSES: dict[str, type[InstalledPluginSolver]] = {}


def solver_class(plugin: InstalledPlugin) -> type[InstalledPluginSolver]:
    """The solver class running one installed plugin (its entry point imported once). Raises on import errors."""
    key = f"{plugin.group}:{plugin.name}"
    if key not in _CLASSES:
        target = plugin.load()
        if not callable(target):
            raise TypeError(f"entry point {plugin.value} is not a class or factory")
        if plugin.kind == "chat-engine":
            can_stream = _implements(target, "stream_tokens") or _implements(target, "stream_chat")
        elif plugin.kind == "chat-solver":
            can_stream = _implements(target, "stream_chat_utterances")
        elif plugin.kind == "question":
            can_stream = _implements(target, "stream_utterances")
        else:
            can_stream = False
        attrs = {
            "plugin": plugin,
            "factory": staticmethod(target),
            "kind": plugin.kind,
            "can_stream": can_stream,
            "chat": plugin.kind in ("chat-engine", "chat-solver"),
            "name": plugin.name,
            "description": f"installed OpenVoiceOS plugin ({plugin.group}, {plugin.package or plugin.value})",
        }
        _CLASSES[key] = type(f"Installed[{plugin.name}]", (InstalledPluginSolver,), attrs)
    return _CLASSES[key]
