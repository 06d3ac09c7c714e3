"""`ovos-solver-aiml-plugin`: classic AIML chat (the ALICE set) with `python-aiml`, fully offline.

The ALICE set is GPL text shipped inside the `python-aiml` package, so it is read from the installed package at
run time and never copied into this repository. Learning its ~98,000 categories takes seconds, so the learned
brain is saved to the cache directory and loaded from there on later starts; the file name is keyed by the
package version, the Python version (the brain is a `marshal` dump) and the size and mtime of every AIML file
learned, so editing a file in `aiml_dir` or upgrading the package relearns.

A request with a client-given identity (`Query.conversation_id`: the `user` field) is its own AIML session,
remembered across requests (bounded, LRU). An anonymous request is a throwaway session rebuilt by replaying the
earlier user turns of its own history, then deleted: what one user tells the bot ("my name is Ann") never shows
up in another conversation. With shared state (`--state`), a session's predicates live in Redis
(persona_server.state.redis_variables): loaded before each reply, the changed ones written back.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import marshal
import re
import sys
import threading
from collections import OrderedDict
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from persona_server.cache import cache_dir, loading_static_data, write_file_atomically
from persona_server.query import Answer, Query
from persona_server.solvers.base import BlockingSolver, SolverContext, SolverOptions
from persona_server.state.redis_variables import Variables, changes

if TYPE_CHECKING:
    import aiml as pyaiml

log = logging.getLogger(__name__)

PACKAGE = "aiml"
DISTRIBUTION = "python-aiml"

# ALICE's templates speak of many bot properties ("I was created by <bot name="master"/>"); an unset one
# leaves a hole in the sentence, so every frequent one has a neutral value a persona file may override.
DEFAULT_PREDICATES: dict[str, str] = {
    "name": "Persona",
    "master": "the persona-server developers",
    "botmaster": "botmaster",
    "gender": "robot",
    "genus": "robot",
    "species": "chat robot",
    "order": "artificial intelligence",
    "kingdom": "machine",
    "phylum": "computer",
    "class": "computer software",
    "family": "chat robot",
    "age": "1",
    "birthday": "the day I was installed",
    "birthplace": "a computer",
    "location": "cyberspace",
    "city": "cyberspace",
    "state": "the internet",
    "domain": "a computer program",
    "etype": "assistant",
    "emotions": "I do not have human emotions",
    "feelings": "I do not have human feelings",
    "favoritecolor": "blue",
    "favoritefood": "electricity",
    "favoritemovie": "2001: A Space Odyssey",
    "favoritebook": "Alice in Wonderland",
    "favoritesong": "Daisy Bell",
    "language": "English",
    "religion": "none",
    "party": "none",
    "president": "the elected president",
    "sign": "Libra",
    "size": "as large as my memory",
    "friends": "the people I talk to",
    "friend": "you",
}

# Template elements that would let chat input reach the machine: <system> runs a shell command, <learn> reads
# a file named by the template (which may embed the user's words). A network service answers neither.
UNSAFE_ELEMENTS = ("system", "learn")


def alice_dir() -> Path:
    """The ALICE set inside the installed `python-aiml` package (found without importing it)."""
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the python-aiml package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "botdata" / "alice"
    if not path.is_dir():
        raise RuntimeError(f"python-aiml ships no ALICE set at {path}")
    return path


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def aiml_files(directory: Path) -> list[Path]:
    """The .aiml files of a directory and its sub-directories, in a stable order."""
    return sorted(path for path in directory.rglob("*") if path.suffix.lower() == ".aiml" and path.is_file())


def brain_path(files: list[Path], *, identity: str) -> Path:
    """Where the brain learned from `files` is cached: `brain-<identity>-<contents>.brn`."""
    digest = hashlib.sha256()
    digest.update(f"{_package_version()}\0{sys.version_info[:2]}\0{marshal.version}\0".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return cache_dir("aiml") / f"brain-{identity}-{digest.hexdigest()[:16]}.brn"


def _identity(alice: bool, user_dir: Path | None) -> str:
    """One name per configuration, so a newer brain of the same configuration replaces the older one."""
    seed = f"alice={alice}\0{user_dir.resolve() if user_dir else ''}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


class AIMLOptions(SolverOptions):
    # Any other string in the block is a bot predicate ("master", "location", "favoritecolor", ...).
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(default="Persona", description="the bot's name, as ALICE says it")
    aiml_dir: str | None = Field(default=None, description="a directory of your own .aiml files to learn too")
    alice: bool = Field(default=True, description="learn the ALICE set shipped with python-aiml")
    langs: list[str] = Field(default=["en"], description="languages answered (the ALICE set is English)")
    predicates: dict[str, str] = Field(default_factory=dict, description="more bot predicates")
    max_sessions: int = Field(default=1000, gt=0, description="conversations remembered at once")
    max_input_chars: int = Field(default=2000, gt=0, description="longer questions are cut to this")

    def bot_predicates(self) -> dict[str, str]:
        extra = {
            key: str(value)
            for key, value in (self.model_extra or {}).items()
            if isinstance(value, str | int | float) and not isinstance(value, bool)
        }
        return {**DEFAULT_PREDICATES, **extra, **self.predicates, "name": self.name}


class AIMLSolver(BlockingSolver):
    name = "ovos-solver-aiml-plugin"
    description = "Chats with the classic ALICE AIML set (and your own .aiml files), offline."
    default_timeout = 5.0
    Options = AIMLOptions
    options: AIMLOptions

    _kernel: pyaiml.Kernel | None = None
    loaded_from_cache: bool = False
    brain_file: Path | None = None

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        state = context.state
        self._shared = (state.variables(context.persona, "aiml", capacity=self.options.max_sessions)
                        if state is not None else None)
        if self._shared is not None:  # only then: the in-process path keeps BlockingSolver.answer, one hop less
            self.answer = self._answer_shared  # type: ignore[method-assign]

    def load_sync(self) -> None:
        import aiml as pyaiml

        user_dir = Path(self.options.aiml_dir).expanduser() if self.options.aiml_dir else None
        if user_dir is not None and not user_dir.is_dir():
            raise RuntimeError(f"aiml_dir {str(user_dir)!r} is not a directory")
        own = aiml_files(user_dir) if user_dir else []
        files = (aiml_files(alice_dir()) if self.options.alice else []) + own
        if not files:
            raise RuntimeError("no AIML to learn: set aiml_dir to a directory of .aiml files, or alice to true")
        identity = _identity(self.options.alice, user_dir)
        try:
            brain: Path | None = brain_path(files, identity=identity)
        except OSError as exc:
            # No writable cache (a read-only home): learn every time rather than fail.
            log.warning("AIML: no cache for the learned brain (%s); learning from the files", exc.strerror or exc)
            brain = None

        kernel = pyaiml.Kernel()
        kernel.verbose(False)
        with loading_static_data():
            self.loaded_from_cache = brain is not None and self._restore(kernel, brain)
            if not self.loaded_from_cache:
                self._learn(kernel, files, set(own))
                if brain is not None:
                    self._save(kernel, brain, identity)
        for key, value in self.options.bot_predicates().items():
            kernel.setBotPredicate(key, value)
        for element in UNSAFE_ELEMENTS:
            kernel._elementProcessors[element] = _refuse
        self.brain_file = brain
        # "en-US" in the persona file answers "en" questions: compare primary subtags, as Query.lang_code does.
        self._langs = {lang.replace("_", "-").split("-")[0].lower() for lang in self.options.langs}
        self._sessions: OrderedDict[str, None] = OrderedDict()
        self._anonymous = itertools.count()
        # Re-entrant: a reply with shared predicates holds it around `solve`.
        self._lock = threading.RLock()
        self._kernel = kernel
        log.info("AIML: %d categories (%s)", kernel.numCategories(), "cached brain" if self.loaded_from_cache
                 else "learned")

    @staticmethod
    def _restore(kernel: pyaiml.Kernel, brain: Path) -> bool:
        if not brain.is_file():
            return False
        try:
            kernel.loadBrain(str(brain))
        except Exception as exc:
            # A truncated or foreign file: learn again and overwrite it.
            log.warning("AIML: cached brain %s unusable (%s); relearning", brain, exc)
            kernel.resetBrain()
            kernel.verbose(False)
            return False
        return True

    @staticmethod
    def _save(kernel: pyaiml.Kernel, brain: Path, identity: str) -> None:
        try:
            write_file_atomically(brain, lambda tmp: kernel.saveBrain(str(tmp)))
        except OSError as exc:
            log.warning("AIML: cannot save the learned brain to %s (%s)", brain, exc.strerror or exc)
            return
        _remove_stale(brain, identity)

    @staticmethod
    def _learn(kernel: pyaiml.Kernel, files: list[Path], user_files: set[Path]) -> None:
        # The ALICE startup file just learns "*.aiml" from its own directory after a chdir; learning the files
        # by absolute path does the same without changing the whole process's working directory.
        for path in files:
            before = kernel.numCategories()
            kernel.learn(glob.escape(str(path)))
            # python-aiml reports a broken file on stderr only; say which of the user's files taught nothing.
            if path in user_files and kernel.numCategories() == before:
                log.warning("AIML: %s added no categories (empty, only repeats, or not valid AIML)", path)

    def solve(self, query: Query) -> str | None:
        if self._kernel is None or query.lang_code not in self._langs:
            return None
        text = " ".join(query.question.split())[: self.options.max_input_chars]
        if not text:
            return None
        conversation = query.conversation_id
        # An anonymous request is a throwaway session rebuilt from the earlier user turns it carries; a known user
        # this process has no session for (another worker, a restart) is rebuilt the same way.
        session = f"user:{conversation}" if conversation else f"anon:{next(self._anonymous)}"
        earlier = [" ".join(turn.split())[: self.options.max_input_chars]
                   for turn in query.earlier_user_turns]
        with self._lock:
            try:
                if conversation is None or session not in self._sessions:
                    for turn in earlier:
                        if turn:
                            self._kernel.respond(turn, session)
                if conversation is not None:
                    self._remember(session)
                reply = self._kernel.respond(text, session)
            finally:
                if conversation is None:
                    self._kernel._deleteSession(session)
        return tidy(reply) or None

    async def _answer_shared(self, query: Query) -> str | Answer | None:
        if self._shared is None or self._kernel is None:
            return await super().answer(query)
        return await self._shared.answer(query, super().answer, self._solve_shared, self.context.run_blocking)

    def _solve_shared(self, query: Query, loaded: Variables) -> tuple[str | None, Variables, list[str]]:
        """`solve` with the session's predicates as Redis has them, and what the reply changed. A session Redis
        does not know keeps what this process knows (then written back whole); failing that, it is rebuilt from
        the earlier turns, as always."""
        kernel = self._kernel
        if kernel is None:
            return None, {}, []
        session = f"user:{query.conversation_id}"
        with self._lock:
            if loaded or session not in self._sessions:
                kernel._deleteSession(session)
                self._sessions.pop(session, None)
                if loaded:
                    kernel._sessions[session] = loaded
                    self._sessions[session] = None
            reply = self.solve(query)
            after = kernel.getSessionData(session)
        return reply, *changes(loaded, after)

    def _remember(self, session: str) -> None:
        """Keep at most `max_sessions` conversations; the least recently used one is forgotten."""
        assert self._kernel is not None
        self._sessions[session] = None
        self._sessions.move_to_end(session)
        while len(self._sessions) > self.options.max_sessions:
            oldest, _ = self._sessions.popitem(last=False)
            self._kernel._deleteSession(oldest)

    async def close(self) -> None:
        self._kernel = None


def _refuse(elem: Any, session_id: str) -> str:
    return ""


def _remove_stale(current: Path, identity: str) -> None:
    for old in current.parent.glob(f"brain-{identity}-*.brn"):
        if old != current:
            old.unlink(missing_ok=True)


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([?.!,;:])")


def tidy(reply: str) -> str:
    """ALICE's templates leave doubled spaces and spaces before punctuation ("How are you  ?")."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(reply.split())).strip()
