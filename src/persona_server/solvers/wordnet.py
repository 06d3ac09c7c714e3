"""`ovos-solver-wordnet-plugin`: an offline English dictionary (Princeton WordNet 3.0), no download at run time.

The data and the dictionary read from it are in `wordnet_data`. Only dictionary questions are answered — "what is
a X", "define X", "what does X mean", "synonyms of X", "opposite of X" and their variants — so the solver can sit
early in a chain without swallowing chit-chat.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from persona_server.query import Query
from persona_server.solvers.base import BlockingSolver, SolverOptions
from persona_server.solvers.wordnet_data import NOUN, VERB, Definition, Dictionary, load_dictionary

Kind = Literal["what", "define", "synonyms", "antonyms"]


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


# Answers depend on the dictionary and the request alone; popular questions come back often.
@functools.lru_cache(maxsize=4096)
def spoken_answer(dictionary: Dictionary, request: Request) -> str | None:
    """The spoken answer to a parsed request, or None when WordNet does not know the word."""
    if request.kind == "synonyms":
        found = dictionary.synonyms(request.term)
        return say_synonyms(*found) if found else None
    if request.kind == "antonyms":
        opposite = dictionary.antonyms(request.term)
        return say_antonyms(*opposite) if opposite else None
    definition = dictionary.define(request.term, nouns_only=request.kind == "what")
    if definition is None:
        return None
    first = _clean_gloss(definition.gloss).split(" ", 1)[0]
    return say_definition(request, definition, dictionary.is_plural_noun(first))


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
        return spoken_answer(dictionary, request)

