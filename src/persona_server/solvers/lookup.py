"""Shared pieces of the look-up solvers (Wikipedia, DuckDuckGo, Wolfram|Alpha).

- `parse_question`: "what is X", "who was X", "tell me about X", "when was X born", "how old is X"... -> the
  search term and what is asked about it (en, pt, es, fr, de).
- `AnswerCache`: a bounded TTL cache of look-up results, with concurrent identical look-ups coalesced.
- `LookupSolver`: the base class: options (`base_url`, `timeout`, `cache_ttl`...), the shared HTTP client with
  explicit timeouts, and the rule that a failing service means "no answer", quickly, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import httpx
import orjson
from pydantic import Field, field_validator

from persona_server import USER_AGENT, secrets
from persona_server.query import Answer, Query
from persona_server.solvers.base import Solver, SolverContext, SolverOptions

if TYPE_CHECKING:
    from persona_server.state.redis_cache import SharedCache

log = logging.getLogger(__name__)


# httpx logs every request URL at INFO; Wolfram's appid travels in the query string. The redacting filter
# masks registered secrets, but a URL has no business in an INFO line in the first place.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level < logging.WARNING:
        logging.getLogger(_name).setLevel(logging.WARNING)

Intent = Literal["about", "born", "age"]

# Seconds during which the same failure of a solver is logged at DEBUG rather than again at WARNING.
WARN_INTERVAL = 60.0

# --------------------------------------------------------------------------------------------------------------
# Question -> search term
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LookupQuestion:
    """What a look-up question asks: a search term and whether it asks about it, its birth or its age."""

    term: str
    intent: Intent = "about"


def _rx(*patterns: str) -> list[re.Pattern[str]]:
    return [re.compile(rf"^(?:{p})$", re.I | re.U) for p in patterns]


# Said before the question proper: "hey, can you tell me ...", "please ...".
_PREFIXES = _rx(
    r"(?:hey|hi|ok|okay|so|well|please|por favor|bitte|s'il te plaît|s'il vous plaît)[,!]?\s+(?P<rest>.+)",
    r"(?:can|could|would) you (?:please )?tell me (?P<rest>.+)",
    r"(?:do|did) you know (?P<rest>.+)",
    r"i (?:want|would like|'d like) to know (?P<rest>.+)",
    r"(?:sabes|sabe|você sabe|voce sabe|podes dizer-me|pode me dizer|me diga|diz-me|dime|sabes tú) (?P<rest>.+)",
    r"(?:sais-tu|savez-vous|dis-moi|dites-moi) (?P<rest>.+)",
    r"(?:weißt du|weisst du|sag mir|sagen sie mir) (?P<rest>.+)",
)

_T = r"(?P<term>.+?)"
# Most specific first: "when was X born" must win over "what is X".
_PATTERNS: dict[str, list[tuple[Intent, re.Pattern[str]]]] = {
    "en": [
        *(("age", p) for p in _rx(
            rf"how old (?:is|was|are|were) {_T}",
            rf"what(?: is|'s) the age of {_T}",
            rf"what age is {_T}",
            rf"what(?: is|'s) {_T}'s? age",
        )),
        *(("born", p) for p in _rx(
            rf"when (?:was|were|is) {_T} born",
            rf"when did {_T} (?:get )?born",
            rf"what(?: is|'s|was) the (?:birth ?date|date of birth|birthday) of {_T}",
            rf"what(?: is|'s|was) {_T}'s? (?:birth ?date|date of birth|birthday)",
            rf"when(?: is|'s) {_T}'s? birthday",
            rf"(?:birth ?date|date of birth|birthday) of {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:what|who)(?: is|'s| was| are| were|'re) {_T}",
            rf"(?:can you )?tell me (?:something |more |a bit |a little )?(?:about|of) {_T}",
            rf"what do you know about {_T}",
            rf"what can you tell me about {_T}",
            rf"(?:give me )?(?:some )?(?:information|info|facts) (?:about|on) {_T}",
            rf"(?:define|describe|explain|look up|search for|search|wiki|wikipedia) {_T}",
            rf"(?:the )?(?:definition|meaning) of {_T}",
            rf"what does {_T} mean",
        )),
    ],
    "pt": [
        *(("age", p) for p in _rx(
            rf"quantos anos (?:tem|tinha) {_T}",
            rf"qual (?:é |e )?a idade d[eoa]s? {_T}",
            rf"que idade tem {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"quando (?:é que )?(?:nasceu|nasceram) {_T}",
            rf"quando {_T} nasceu",
            rf"qual (?:é |e )?a data de nascimento d[eoa]s? {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"o que (?:é|e|são|sao|era|foi|foram)(?: que)? {_T}",
            rf"o que (?:é|e) que (?:é|e) {_T}",
            rf"quem (?:é|e|foi|era|são|sao|foram)(?: que)? {_T}",
            rf"(?:fala|fale|conta|conte)(?:-me| me)? (?:um pouco )?(?:sobre|de|do|da|acerca de) {_T}",
            rf"o que sabes sobre {_T}",
            rf"(?:define|defina|descreve|descreva|explica|explique|pesquisa|pesquise|procura) {_T}",
            rf"(?:a )?(?:definição|definicao|significado) de {_T}",
        )),
    ],
    "es": [
        *(("age", p) for p in _rx(
            rf"(?:cuántos|cuantos) años (?:tiene|tenía|tenia) {_T}",
            rf"(?:qué|que) edad tiene {_T}",
            rf"(?:cuál|cual) es la edad de {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"(?:cuándo|cuando) (?:nació|nacio|nacieron) {_T}",
            rf"(?:cuál|cual) es la fecha de nacimiento de {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:qué|que) (?:es|son|era|fue|fueron) {_T}",
            rf"(?:quién|quien|quiénes|quienes) (?:es|fue|era|son|fueron) {_T}",
            rf"(?:háblame|hablame|cuéntame|cuentame) (?:un poco )?(?:sobre|de|del|acerca de) {_T}",
            rf"(?:qué|que) sabes (?:sobre|de) {_T}",
            rf"(?:define|describe|explica|busca) {_T}",
            rf"(?:la )?(?:definición|definicion|significado) de {_T}",
        )),
    ],
    "fr": [
        *(("age", p) for p in _rx(
            rf"quel (?:âge|age) (?:a|avait) {_T}",
            rf"quel est l'(?:âge|age) de {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"quand (?:est|était|etait) (?:né|ne|née|nee|nés|nes) {_T}",
            rf"quand {_T} (?:est-il|est-elle|est il|est elle) (?:né|ne|née|nee)",
            rf"quelle est la date de naissance d(?:e |'){_T}",
        )),
        *(("about", p) for p in _rx(
            rf"qu'est-ce qu(?:e |')(?:c'est )?{_T}",
            rf"qu'est ce qu(?:e |')(?:c'est )?{_T}",
            rf"c'est quoi {_T}",
            rf"(?:qui|que|quoi) (?:est|était|etait|sont|étaient|c'est) {_T}",
            rf"(?:parle|parlez)(?:-moi| moi)? (?:un peu )?(?:de |d'|du |des ){_T}",
            rf"que sais-tu (?:de |d'|du |des |sur ){_T}",
            rf"(?:définis|définissez|définir|décris|décrivez|explique|expliquez|cherche) {_T}",
            rf"(?:la )?(?:définition|definition|signification) d(?:e |'|u |es ){_T}",
        )),
    ],
    "de": [
        *(("age", p) for p in _rx(
            rf"wie alt (?:ist|war|sind|waren) {_T}",
            rf"(?:was|wie) ist das alter von {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"wann (?:wurde|wurden|ist) {_T} geboren",
            rf"wann hat {_T} geburtstag",
            rf"was ist das geburtsdatum von {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:was|wer) (?:ist|sind|war|waren) {_T}",
            rf"(?:erzähl|erzähle|erzählen sie|erzaehl)(?: mir)? (?:etwas |was |mehr )?(?:über|ueber|von) {_T}",
            rf"was weißt du über {_T}",
            rf"(?:definiere|beschreibe|erkläre|erklaere|suche) {_T}",
            rf"(?:die )?(?:definition|bedeutung) von {_T}",
            rf"was bedeutet {_T}",
        )),
    ],
}

# Leading articles dropped from a term: "what is a cat" asks about "cat". "the" is kept in English, where it
# is often part of a name ("The Beatles", "The Hague").
_ARTICLES: dict[str, re.Pattern[str]] = {
    "en": re.compile(r"^(?:a|an)\s+", re.I),
    "pt": re.compile(r"^(?:o|a|os|as|um|uma|uns|umas)\s+", re.I),
    "es": re.compile(r"^(?:el|la|los|las|un|una|unos|unas)\s+", re.I),
    "fr": re.compile(r"^(?:(?:le|la|les|un|une|des)\s+|l')", re.I),
    "de": re.compile(r"^(?:der|die|das|ein|eine|einen|einem|einer)\s+", re.I),
}

# Terms about the conversation itself ("who are you", "what is your name", "what's up"): not look-ups.
_NOT_TERMS = frozenset(
    "you yours yourself me mine myself i it this that these those he she they we us him her them there here up "
    "new happening today "
    "tu você voce vocês eu isto isso aquilo ele ela usted tú yo eso esto toi vous moi ça ca cela "
    "du sie ich er es".split()
) | {"going on", "the matter", "the time", "the date", "the weather", "the news"}
_NOT_TERM_STARTS = frozenset(
    "you your yours yourself my me myself i i'm teu tua teus tuas meu minha meus minhas você voce tu mi mis "
    "tus ton ta tes mon ma mes votre vos dein deine deinen mein meine meinen".split()
)


def parse_question(text: str, lang: str = "en", *, bare: bool = False) -> LookupQuestion | None:
    """The search term of a look-up question, or None when the text is not one.

    With `bare`, text that matches no question form is taken as the term itself ("Albert Einstein?").
    """
    lang = lang.replace("_", "-").split("-")[0].lower()
    cleaned = _clean(text)
    if not cleaned:
        return None
    candidates = [cleaned]
    for prefix in _PREFIXES:
        match = prefix.match(candidates[-1])
        if match:
            candidates.append(match.group("rest").strip())
    # Someone asking in Portuguese may still word a question in English.
    langs = [lang, "en"] if lang in _PATTERNS and lang != "en" else ["en"]
    for candidate in reversed(candidates):
        for code in langs:
            for intent, pattern in _PATTERNS[code]:
                match = pattern.match(candidate)
                if match:
                    return _question(match.group("term"), intent, code)
    if bare:
        return _question(candidates[-1], "about", lang)
    return None


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u00bf", "").replace("\u00a1", "")
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" ?!.;:,\"'")


def _question(term: str, intent: Intent, lang: str) -> LookupQuestion | None:
    term = term.strip(" ?!.;:,\"'")
    term = re.sub(r"\s+(?:please|por favor|bitte|s'il (?:te|vous) plaît)$", "", term, flags=re.I)
    term = re.sub(r"^(?:about|sobre)\s+", "", term, flags=re.I)
    article = _ARTICLES.get(lang)
    if article is not None:
        term = article.sub("", term, count=1)
    term = term.strip()
    # Arithmetic and numbers ("what is 2+2") are not encyclopedia look-ups; neither is small talk.
    if not term or not any(ch.isalpha() for ch in term):
        return None
    lowered = term.lower()
    if lowered in _NOT_TERMS or lowered.split()[0] in _NOT_TERM_STARTS:
        return None
    return LookupQuestion(term=term, intent=intent)


# --------------------------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft no nr vs etc e.g i.e ca approx c inc ltd co corp dept est fig gen gov "
    "lt col sgt capt rev hon u.s u.k a.d b.c jan feb mar apr jun jul aug sep sept oct nov dec "
    "sra dra av pág pag núm num bzw usw ca.".split()
)
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a capital or a digit.
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s+[\"'(\[¿¡]?[A-ZÀ-ÖØ-Þ0-9])")


def first_sentences(text: str, count: int) -> str:
    """The first `count` sentences of plain text, not cut after abbreviations or initials."""
    text = _tidy(text)
    if count <= 0 or not text:
        return text
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentence = text[start:match.end()].strip()
        last_word = sentence.rsplit(None, 1)[-1] if sentence else ""
        word = last_word.rstrip(".").lower()
        # "J. R. R. Tolkien", "Dr. Smith", "the U.S. Army": a full stop that ends no sentence.
        if match.group().startswith(".") and (len(word) <= 1 or word in _ABBREVIATIONS):
            continue
        sentences.append(sentence)
        start = match.end()
        if len(sentences) == count:
            return " ".join(sentences)
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return " ".join(sentences[:count])


def _tidy(text: str) -> str:
    """Plain-text extracts keep the husks of removed markup: "( ; )", "(, )", doubled spaces."""
    text = re.sub(r"\s*\((?:[^()\w]|\s)*\)", "", text)
    text = re.sub(r"\(\s*[;,]?\s*", "(", text)
    text = re.sub(r"\s*[;,]?\s*\)", ")", text)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s+([,.;:])", r"\1", text).strip()


# --------------------------------------------------------------------------------------------------------------
# The answer cache
# --------------------------------------------------------------------------------------------------------------

V = TypeVar("V")


class AnswerCache(Generic[V]):
    """A bounded LRU cache whose entries expire after `ttl` seconds.

    `get_or_fetch` also coalesces concurrent identical look-ups (a speculative start and a second client asking
    the same thing), so the service sees one request. Only definitive results are stored: `fetch` signals a
    failure by raising `LookupFailed`, and failures are never cached.
    """

    def __init__(self, ttl: float, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        # Shared with other instances (--state): asked on a miss here, before the service; None: this process.
        self.shared: SharedCache | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: Hashable, value: V, ttl: float | None = None) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._entries[key] = (self.clock() + (ttl or self.ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_fetch(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        hit, value = self.get(key)
        if hit:
            return value  # type: ignore[return-value]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key, fetch))
            # When every waiter has given up, nobody reads the outcome: mark it read so asyncio stays quiet.
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._pending[key] = pending
        # A waiter that is cancelled (the chain moved on) must not cancel the look-up other waiters share.
        return await asyncio.shield(pending)

    async def _fetch(self, key: Hashable, fetch: Callable[[], Awaitable[V]]) -> V:
        try:
            shared = self.shared if self.ttl > 0 and self.max_entries > 0 else None
            if shared is not None:
                found, value, ttl = await shared.get(key)
                if found:  # another instance looked it up: kept here for what is left of its TTL
                    self.put(key, value, ttl)
                    return value  # type: ignore[no-any-return]
            value = await fetch()
            self.put(key, value)
            if shared is not None:
                await shared.put(key, value, self.ttl)
            return value
        finally:
            self._pending.pop(key, None)


class LookupFailed(Exception):
    """The service could not be asked or gave no usable reply: no answer now, and nothing cached."""


# --------------------------------------------------------------------------------------------------------------
# The base solver
# --------------------------------------------------------------------------------------------------------------


class LookupOptions(SolverOptions):
    base_url: str = Field(default="", description="the service's root URL")
    connect_timeout: float = Field(default=2.0, gt=0, description="seconds to connect (capped by timeout)")
    cache_ttl: float = Field(default=3600.0, ge=0, description="seconds a result is reused; 0 disables")
    cache_size: int = Field(default=1024, ge=0, description="results kept at most")
    user_agent: str = Field(default=USER_AGENT, description="the User-Agent header sent to the service")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class LookupSolver(Solver):
    """A solver that asks a web service: never raises for a failing service, answers from a TTL cache."""

    speculative = True
    default_timeout = 5.0
    default_deadline = 10.0
    Options: ClassVar[type[SolverOptions]] = LookupOptions
    options: LookupOptions
    # What the service is called in log lines.
    service: ClassVar[str] = "service"

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        self.cache: AnswerCache[Any] = AnswerCache(self.options.cache_ttl, self.options.cache_size)
        if context.state is not None:
            self.cache.shared = context.state.cache(context.persona, self.name)
        self._warned: dict[str, float] = {}

    @property
    def http_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(self.options.connect_timeout, self.timeout))

    async def answer(self, query: Query) -> Answer | None:
        try:
            # The solver's own deadline, a little inside the chain's: a service that trickles bytes (each read
            # within the read timeout) still ends here, as "no answer", before the chain has to cut it off.
            async with asyncio.timeout(self.timeout * 0.95):
                return await self.lookup(query)
        except LookupFailed as exc:
            self._warn(str(exc))
        except TimeoutError:
            self._warn(f"no reply within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            self._warn(describe_http_error(exc))
        except Exception as exc:
            # A reply of a shape nobody expected is still only "no answer"; the type, never the message,
            # which could quote the request.
            log.debug("%s: %s look-up failed", self.context.persona, self.service, exc_info=True)
            self._warn(f"unexpected failure ({type(exc).__name__})")
        return None

    async def lookup(self, query: Query) -> Answer | None:
        raise NotImplementedError

    async def cached(self, key: Hashable, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """The result of `fetch` for `key`, reused for `cache_ttl` seconds; failures (exceptions) never are."""
        return await self.cache.get_or_fetch((self.name, *_as_tuple(key)), fetch)

    async def get_json(self, url: str, params: dict[str, str]) -> Any:
        """GET a JSON document. Raises LookupFailed (with a message free of URLs and secrets) on any failure."""
        response = await self.get(url, params)
        if response.status_code != 200:
            raise LookupFailed(f"HTTP {response.status_code}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise LookupFailed("the reply is not JSON") from None

    async def get(self, url: str, params: dict[str, str]) -> httpx.Response:
        try:
            return await self.context.http.get(
                url, params=params, timeout=self.http_timeout, headers={"User-Agent": self.options.user_agent}
            )
        except httpx.HTTPError as exc:
            # httpx error messages may quote the request URL, query string (and appid) included.
            raise LookupFailed(describe_http_error(exc)) from None

    def _warn(self, reason: str) -> None:
        # An offline machine fails every question the same way: say so once a minute, not once a question.
        now = time.monotonic()
        level = logging.WARNING
        if now - self._warned.get(reason, -WARN_INTERVAL) < WARN_INTERVAL:
            level = logging.DEBUG
        else:
            self._warned[reason] = now
        log.log(level, "%s: no answer from %s: %s", self.context.persona, self.service, secrets.redact(reason))


def describe_http_error(exc: httpx.HTTPError) -> str:
    """An httpx error in words, without its message (which may quote the request URL)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


def _as_tuple(key: Hashable) -> tuple[Hashable, ...]:
    return key if isinstance(key, tuple) else (key,)


def valid_lang(code: str, fallback: str = "en") -> str:
    """A language subtag safe to put into a host name ("{lang}.wikipedia.org"); the fallback otherwise."""
    return code if re.fullmatch(r"[a-z]{2,3}", code or "") else fallback
