"""Sections into passages of bounded size, and passages into answers of whole sentences.

A passage never crosses a heading (or a PDF page). Within a section, a short paragraph (under an eighth of
`max_chars`: a caption, a lead-in line, a list item) is merged with the next ones until the passage is no longer
short, and a paragraph longer than `max_chars` is split at sentence ends (a sentence longer than that, at word
breaks). Other paragraphs are passages of their own: a passage about one thing embeds closer to a question about
it than one about three. The default bound of 1,000
characters is about the 256 word pieces all-MiniLM-L6-v2 reads: a longer passage would be embedded truncated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from persona_server.knowledge.documents import Section

DEFAULT_PASSAGE_CHARS = 1000

# A sentence ends at . ! ? (or their CJK forms), optionally closed by quotes/brackets, before whitespace.
_SENTENCE_END = re.compile("[.!?\u3002\uff01\uff1f][\"')\\]\u00bb\u201d\u2019]*(?=\\s)")


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    heading: tuple[str, ...] = ()
    page: int | None = None


def sentences(text: str) -> list[str]:
    """The sentences of a text, each with its closing punctuation."""
    found, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        found.append(text[start:match.end()].strip())
        start = match.end()
    found.append(text[start:].strip())
    return [sentence for sentence in found if sentence]


def _cut_words(text: str, limit: int) -> Iterator[str]:
    """A text longer than `limit` in pieces of at most `limit` characters, broken between words."""
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        yield text[:cut].rstrip()
        text = text[cut:].lstrip()
    if text:
        yield text


def _pieces(paragraph: str, limit: int) -> Iterator[str]:
    """A paragraph as pieces of at most `limit` characters: itself, or its sentences grouped."""
    if len(paragraph) <= limit:
        yield paragraph
        return
    chunk = ""
    for sentence in sentences(paragraph):
        for part in _cut_words(sentence, limit):
            if chunk and len(chunk) + 1 + len(part) > limit:
                yield chunk
                chunk = ""
            chunk = f"{chunk} {part}" if chunk else part
    if chunk:
        yield chunk


def split_sections(sections: Iterable[Section], max_chars: int = DEFAULT_PASSAGE_CHARS) -> Iterator[Passage]:
    small = max_chars // 8
    for section in sections:
        chunk = ""
        for paragraph in section.paragraphs:
            for piece in _pieces(paragraph, max_chars):
                if chunk and (len(chunk) >= small or len(chunk) + 2 + len(piece) > max_chars):
                    yield Passage(chunk, section.heading, section.page)
                    chunk = ""
                chunk = f"{chunk}\n\n{piece}" if chunk else piece
        if chunk:
            yield Passage(chunk, section.heading, section.page)


def trim_to_sentences(text: str, max_chars: int) -> str:
    """The leading whole sentences of a text that fit in `max_chars` (at least the first one, cut between words
    if it alone is longer)."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= max_chars:
        return text
    kept = ""
    for sentence in sentences(text):
        candidate = f"{kept} {sentence}" if kept else sentence
        if len(candidate) > max_chars:
            break
        kept = candidate
    if kept:
        return kept
    return next(_cut_words(text, max(1, max_chars - 1))) + "…"


_WORD = re.compile(r"\w+")
_QUESTION_WORDS = frozenset(
    "the and are was were what when where which who whom whose why how does did can could would should will "
    "for from with about this that these those there their have has had you your any some into tell".split())


@functools.cache
def _stem() -> Callable[[list[str]], list[str]]:
    try:
        import Stemmer  # type: ignore[import-not-found]
    except ImportError:  # a five-letter prefix is a crude stem: "cleaning" and "cleaned" meet at "clean"
        return lambda words: [w[:5] for w in words]
    return Stemmer.Stemmer("english").stemWords  # type: ignore[no-any-return]


def _terms(text: str) -> set[str]:
    return set(_stem()([w for w in _WORD.findall(text.casefold()) if len(w) > 2 and w not in _QUESTION_WORDS]))


def excerpt(text: str, question: str, max_chars: int) -> str:
    """A passage as an answer: whole when it fits in `max_chars`; else whole sentences from the one sharing the
    most words with the question (the first, on a tie), as many as fit."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= max_chars:
        return flat
    parts = sentences(flat)
    wanted = _terms(question)
    overlap = [len(_terms(sentence) & wanted) for sentence in parts]
    start = max(range(len(parts)), key=lambda i: (overlap[i], -i))
    return trim_to_sentences(" ".join(parts[start:]), max_chars)
