"""`ovos-solver-rivescript-plugin`: small talk, jokes, poems and per-conversation memory from a RiveScript brain.

The brain ships with the package (data/rivescript/<lang>/*.rive). It answers chit-chat and declines factual
questions: a reply of `<noreply>` (or no match at all) means "not mine", so the chain moves on to solvers that
know facts. A request with a client-given identity (`Query.conversation_id`: the `user` field) is a RiveScript
user of its own, remembered across requests (bounded, LRU). An anonymous request is a throwaway user rebuilt by
replaying the earlier user turns of its own history, then forgotten: what one stranger tells the bot never
reaches another, and resent history works in any process. With shared state (`--state`), a user's variables
live in Redis (persona_server.state.redis_variables): loaded before each reply, the changed ones written back.

Brain conventions (see data/rivescript/en/*.rive):
- `<noreply>` anywhere in a reply: answer nothing.
- `<call>deal POOL</call>`: one of the replies of the trigger `+ POOL`, never repeating within a conversation
  until the pool is used up (the jokes).
- `<call>remember KEY VALUE</call>`, `<call>forget KEY VALUE</call>`, `<call>has KEY VALUE</call>` (yes/no),
  `<call>recall KEY</call>`: a short list per conversation (what the user likes), recalled as "a, b and c"
  ("undefined" when empty).
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import threading
from collections import OrderedDict
from datetime import date, datetime
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from rivescript import RiveScript
from rivescript.exceptions import RiveScriptError
from rivescript.python import PyRiveObjects
from rivescript.sessions import MemorySessionStorage

from persona_server.query import Answer, Query
from persona_server.solvers.base import BlockingSolver, SolverContext, SolverOptions
from persona_server.state.redis_variables import Variables, changes

log = logging.getLogger(__name__)

FALLBACK_LANG = "en"
NOREPLY = "<noreply>"
# The trigger of the brain's last-resort reply: when it is all that matched a question ("...?"), the question
# is one the brain knows nothing about, so it is left to the next solver.
CATCH_ALL = "*"
# Longer messages are not chit-chat, and RiveScript's regex matching grows with the input.
MAX_INPUT_CHARS = 500
# Items kept per remembered list (what the user likes), so one conversation cannot grow without limit.
MAX_LIST_ITEMS = 12

# Stripped from user text before matching. Besides sentence punctuation this removes the characters of
# RiveScript's own tag syntax ({topic=..}, {@..}, <set ..=..>, (@array), *, |), so text a user typed can never
# act as a tag once it is echoed through <star>. Apostrophes stay: the substitutions expand contractions.
_PUNCTUATION = re.compile(r"[.,!?;:\"“”«»(){}\[\]=|_*#@~^$%&+/\\<>]")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'"})
_WHITESPACE = re.compile(r"\s+")


class RiveScriptOptions(SolverOptions):
    """The config block: the bot's self-description (key names as the OpenVoiceOS plugin has them)."""

    name: str | None = Field(default=None, description="the bot's name (default: the persona's name)")
    birthday: str = Field(default="March 14, 2024", description="the bot's birthday; its age comes from this")
    age: str | None = Field(default=None, description="the bot's age (default: computed from `birthday`)")
    sex: str = "none"
    gender: str | None = Field(default=None, description="alias of `sex`")
    master: str = Field(default="the persona-server developers", description="who made the bot")
    eye_color: str = "none"
    hair: str = "none"
    hair_length: str = "none"
    favorite_color: str = "teal"
    favorite_food: str = "electricity, lightly salted"
    favorite_band: str = "Daft Punk"
    favorite_book: str = "I, Robot"
    favorite_author: str = "Isaac Asimov"
    favorite_song: str = "Daisy Bell"
    favorite_videogame: str = "Portal"
    favorite_movie: str = "WALL-E"
    favorite_animal: str = "the octopus"
    job: str = Field(default="chatting with people", description="what the bot does")
    website: str = "github.com/OpenVoiceOS"
    pet: str = "a very small bug in my code"
    location: str = "inside a computer"
    interests: str = "I like jokes, poems, music, and hearing about your day."
    brain_dir: str | None = Field(
        default=None,
        description="directory of .rive files loaded after the shipped brain; a file named like a shipped one "
        "replaces it; subdirectories named by language (en, pt, ...) extend that language's brain",
    )
    max_conversations: int = Field(
        default=5000, ge=1, description="conversations remembered at once; the least recently active are forgotten"
    )


# Bot variable names the OpenVoiceOS brain used for some config keys, set too so that brains written for it
# (loaded through `brain_dir`) still find them.
OVOS_VARIABLES: dict[str, str] = {
    "eye_color": "eyes",
    "hair_length": "hairlen",
    "favorite_color": "color",
    "favorite_band": "band",
    "favorite_book": "book",
    "favorite_author": "author",
    "favorite_song": "song",
    "favorite_videogame": "videogame",
    "favorite_movie": "movie",
}
_NOT_BOT_VARIABLES = frozenset({"enabled", "timeout", "speculative", "brain_dir", "max_conversations", "gender"})


class LRUSessions(MemorySessionStorage):
    """RiveScript's in-memory user variables, forgetting the least recently active users beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self._users: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def set(self, username: str, vars: dict[str, Any]) -> None:
        super().set(username, vars)
        self._users.move_to_end(username)
        while len(self._users) > self.capacity:
            evicted, _ = self._users.popitem(last=False)
            self._frozen.pop(evicted, None)

    def get(self, username: str, key: str, default: str = "undefined") -> Any:
        if username in self._users:
            self._users.move_to_end(username)
        return super().get(username, key, default)

    def known(self, username: str) -> bool:
        return username in self._users

    def forget(self, username: str) -> None:
        self._users.pop(username, None)
        self._frozen.pop(username, None)

    def __len__(self) -> int:
        return len(self._users)


def age_from_birthday(birthday: str, today: date) -> str | None:
    """Whole years since a birthday written as 2024-03-14, March 14, 2024, 14 March 2024 or just a year."""
    text = birthday.strip()
    for fmt in ("%Y-%m-%d", "%B %d, %Y", "%B %d %Y", "%d %B %Y", "%b %d, %Y", "%b %d %Y", "%d %b %Y", "%d/%m/%Y"):
        try:
            born = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return str(max(0, today.year - born.year - ((today.month, today.day) < (born.month, born.day))))
    year = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", text)
    return str(max(0, today.year - int(year.group(1)))) if year else None


# The word joining the last two items of a recalled list, per brain language.
CONJUNCTIONS: dict[str, str] = {"en": "and", "pt": "e", "es": "y", "fr": "et", "de": "und", "it": "e"}


def spoken_list(items: list[str], lang: str = FALLBACK_LANG) -> str:
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {CONJUNCTIONS.get(lang, 'and')} {items[-1]}"


def shipped_brains() -> dict[str, dict[str, Path]]:
    """Language -> {file name -> path} of the brain shipped in the package."""
    root = files("persona_server.data").joinpath("rivescript")
    brains: dict[str, dict[str, Path]] = {}
    with as_file(root) as root_path:  # the package is installed as plain files (editable or wheel)
        for lang_dir in sorted(Path(root_path).iterdir()):
            if lang_dir.is_dir():
                brains[lang_dir.name] = {p.name: p for p in sorted(lang_dir.glob("*.rive"))}
    return brains


def merge_brain_dir(brains: dict[str, dict[str, Path]], brain_dir: Path) -> None:
    """Overlay a user's brain directory: top-level files go to the fallback language, `<lang>/` to that one."""
    if not brain_dir.is_dir():
        raise FileNotFoundError(f"brain_dir is not a directory: {brain_dir}")
    overlays: dict[str, list[Path]] = {FALLBACK_LANG: sorted(brain_dir.glob("*.rive"))}
    for sub in sorted(brain_dir.iterdir()):
        if sub.is_dir():
            overlays.setdefault(sub.name.lower(), []).extend(sorted(sub.glob("*.rive")))
    for lang, paths in overlays.items():
        brain = brains.setdefault(lang, {})
        for path in paths:
            # Re-inserting moves the file to the end: user files load after the shipped ones they don't replace.
            brain.pop(path.name, None)
            brain[path.name] = path


class Brain:
    """One language's RiveScript engine and the replies its `deal` pools draw from."""

    def __init__(self, lang: str, paths: list[Path], sessions: LRUSessions) -> None:
        self.lang = lang
        self.engine = RiveScript(utf8=True, session_manager=sessions)
        # rivescript's Python object handler keeps its macros in a class attribute shared by every engine of
        # the process; give this engine its own, or another brain's `deal` would answer for this one.
        handler = PyRiveObjects()
        handler._objects = {}
        self.engine.set_handler("python", handler)
        # Our own stripping (see _PUNCTUATION) already ran; this only drops what substitutions could add back.
        self.engine.unicode_punctuation = _PUNCTUATION
        for path in paths:
            self.engine.load_file(str(path))
        self.engine.sort_replies()
        self.pools = self._pools()
        # Set by the solver around one reply: the conversation's earlier answers (a joke already told is not
        # dealt again), and whether earlier turns are being replayed (their replies are dropped: deal nothing).
        self.told: list[str] = []
        self.replaying = False
        self.engine.set_subroutine("deal", self._deal)
        self.engine.set_subroutine("remember", self._remember)
        self.engine.set_subroutine("forget", self._forget)
        self.engine.set_subroutine("recall", self._recall)
        self.engine.set_subroutine("has", self._has)

    def _pools(self) -> dict[str, list[str]]:
        pools: dict[str, list[str]] = {}
        for trigger in self.engine.deparse()["topics"].get("random", {}).get("triggers", []):
            pools.setdefault(trigger["trigger"], []).extend(trigger["reply"])
        return pools

    # -- object macros (called by the brain as <call>name args</call>; args are words) ---------------------

    def _user(self, rs: RiveScript) -> str:
        return str(rs.current_user())

    def _deal(self, rs: RiveScript, args: list[str]) -> str:
        pool_name = " ".join(args)
        pool = self.pools.get(pool_name, [])
        if not pool or self.replaying:
            return ""
        user = self._user(rs)
        key = f"__dealt {pool_name}"
        seen = {int(i) for i in str(rs.get_uservar(user, key)).split(",") if i.isdigit()}
        if self.told:
            seen |= {i for i, reply in enumerate(pool) if _was_told(reply, self.told)}
        fresh = [i for i in range(len(pool)) if i not in seen]
        if not fresh:  # all told: start over, but not with the one just told
            last = rs.get_uservar(user, f"__last {pool_name}")
            fresh = [i for i in range(len(pool)) if str(i) != str(last)] or list(range(len(pool)))
            seen = set()
        choice = random.choice(fresh)
        seen.add(choice)
        rs.set_uservar(user, key, ",".join(str(i) for i in sorted(seen)))
        rs.set_uservar(user, f"__last {pool_name}", str(choice))
        return pool[choice].replace("\\n", "\n").replace("\\s", " ")

    def _items(self, rs: RiveScript, key: str) -> list[str]:
        value = rs.get_uservar(self._user(rs), f"__list {key}")
        return [item for item in str(value).split("|") if item] if value not in (None, "undefined") else []

    def _store(self, rs: RiveScript, key: str, items: list[str]) -> None:
        rs.set_uservar(self._user(rs), f"__list {key}", "|".join(items[-MAX_LIST_ITEMS:]))

    def _remember(self, rs: RiveScript, args: list[str]) -> str:
        if len(args) < 2:
            return ""
        key, value = args[0], " ".join(args[1:])
        items = [item for item in self._items(rs, key) if item != value]
        self._store(rs, key, [*items, value])
        return ""

    def _forget(self, rs: RiveScript, args: list[str]) -> str:
        if len(args) < 2:
            return ""
        key, value = args[0], " ".join(args[1:])
        self._store(rs, key, [item for item in self._items(rs, key) if item != value])
        return ""

    def _has(self, rs: RiveScript, args: list[str]) -> str:
        return "yes" if len(args) >= 2 and " ".join(args[1:]) in self._items(rs, args[0]) else "no"

    def _recall(self, rs: RiveScript, args: list[str]) -> str:
        items = self._items(rs, args[0]) if args else []
        return spoken_list(items, self.lang) if items else "undefined"


class RiveScriptSolver(BlockingSolver):
    name = "ovos-solver-rivescript-plugin"
    description = "Small talk, jokes, poems and per-conversation memory from a shipped RiveScript brain."
    default_timeout = 2.0
    Options: ClassVar[type[SolverOptions]] = RiveScriptOptions
    options: RiveScriptOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        self._brains: dict[str, Brain] = {}
        # RiveScript keeps per-user state in the engine and is not thread-safe: one reply at a time (re-entrant:
        # a reply with shared variables holds it around `solve`).
        self._lock = threading.RLock()
        self._sessions = LRUSessions(self.options.max_conversations)
        state = context.state
        self._shared = (state.variables(context.persona, "rivescript", capacity=self.options.max_conversations)
                        if state is not None else None)
        if self._shared is not None:  # only then: the in-process path keeps BlockingSolver.answer, one hop less
            self.answer = self._answer_shared  # type: ignore[method-assign]
        self._anonymous = itertools.count()
        self._variables_date: date | None = None

    # -- loading ------------------------------------------------------------------------------------------

    def load_sync(self) -> None:
        brains = shipped_brains()
        if self.options.brain_dir:
            merge_brain_dir(brains, Path(self.options.brain_dir).expanduser())
        loaded = {
            lang: Brain(lang, list(paths.values()), self._sessions) for lang, paths in brains.items() if paths
        }
        if not loaded:
            raise RuntimeError("no RiveScript brain files found")
        with self._lock:
            self._brains = loaded
            self._set_variables(date.today())

    def bot_variables(self, today: date) -> dict[str, str]:
        """The bot variables the brain reads as <bot KEY>: the config block plus derived values."""
        values = {
            key: str(value)
            for key, value in self.options.model_dump().items()
            if key not in _NOT_BOT_VARIABLES and value is not None
        }
        if self.options.gender:
            values["sex"] = self.options.gender
        values["name"] = self.options.name or self._persona_display_name()
        values["age"] = self.options.age or age_from_birthday(self.options.birthday, today) or "undefined"
        for key, alias in OVOS_VARIABLES.items():
            values[alias] = values[key]
        return values

    def _persona_display_name(self) -> str:
        name = self.context.persona.replace("_", " ").replace("-", " ").strip()
        return name or "Rive"

    def _set_variables(self, today: date) -> None:
        for brain in self._brains.values():
            for key, value in self.bot_variables(today).items():
                brain.engine.set_variable(key, value)
        self._variables_date = today

    # -- answering ----------------------------------------------------------------------------------------

    async def _answer_shared(self, query: Query) -> str | Answer | None:
        if self._shared is None:
            return await super().answer(query)
        return await self._shared.answer(query, super().answer, self._solve_shared, self.context.run_blocking)

    def _solve_shared(self, query: Query, loaded: Variables) -> tuple[str | None, Variables, list[str]]:
        """`solve` with the user's variables as Redis has them, and what the reply changed. A user Redis does not
        know (new, or Redis restarted empty) keeps what this process knows, which is then written back whole;
        failing that, the user is rebuilt from the earlier turns, as always."""
        user = f"user:{query.conversation_id}"
        with self._lock:
            if loaded or not self._sessions.known(user):
                self._sessions.forget(user)
                if loaded:
                    self._sessions.set(user, loaded)
            reply = self.solve(query)
            after = self._sessions.get_any(user) or {}
        return reply, *changes(loaded, after)

    def brain_for(self, lang_code: str) -> Brain | None:
        return self._brains.get(lang_code) or self._brains.get(FALLBACK_LANG)

    def solve(self, query: Query) -> str | None:
        message = clean_message(query.question)
        if not message:
            return None
        brain = self.brain_for(query.lang_code)
        if brain is None:
            return None
        conversation = query.conversation_id
        # An anonymous request is its own throwaway user, rebuilt from the earlier turns it carries; a known user
        # whose state this process does not have (another worker, a restart) is rebuilt the same way.
        user = f"user:{conversation}" if conversation else f"anon:{next(self._anonymous)}"
        earlier = [clean_message(turn) for turn in query.earlier_user_turns]
        with self._lock:
            today = date.today()
            if today != self._variables_date:  # the bot's age changes on its birthday
                self._set_variables(today)
            try:
                if conversation is None or not self._sessions.known(user):
                    self._replay(brain, user, earlier)
                brain.told = query.earlier_answers
                topic = brain.engine.get_uservar(user, "topic")
                reply = self._reply(brain, user, message)
                if (
                    reply is not None
                    and query.question.rstrip().endswith("?")
                    and topic in (None, "undefined", "random")
                    and brain.engine.last_match(user) == CATCH_ALL
                ):
                    return None
            finally:
                brain.told = []
                if conversation is None:
                    self._sessions.forget(user)
        return reply

    def _replay(self, brain: Brain, user: str, turns: list[str]) -> None:
        """Say the earlier turns again to rebuild what they set (a name, likes, the topic); replies are dropped."""
        brain.replaying = True
        try:
            for turn in turns:
                if turn:
                    self._reply(brain, user, turn)
        finally:
            brain.replaying = False

    def _reply(self, brain: Brain, user: str, message: str) -> str | None:
        try:
            reply = brain.engine.reply(user, message, errors_as_replies=False)
        except RiveScriptError:  # no trigger matched, or no reply of the matched one applies
            return None
        return clean_reply(reply)


def _was_told(reply: str, answers: list[str]) -> bool:
    """Whether a pool reply, as the user saw it, is in one of the earlier answers."""
    spoken = clean_reply(reply.replace("\\n", "\n").replace("\\s", " "))
    return bool(spoken) and any(spoken in answer for answer in answers)


def clean_message(text: str) -> str:
    text = text.translate(_QUOTES)[:MAX_INPUT_CHARS]
    return _WHITESPACE.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def clean_reply(reply: str) -> str | None:
    if not reply or NOREPLY in reply or "[ERR:" in reply:
        return None
    lines = [_WHITESPACE.sub(" ", line).strip() for line in reply.split("\n")]
    text = "\n".join(line for line in lines if line)
    return text or None


