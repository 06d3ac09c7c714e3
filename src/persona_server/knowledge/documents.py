"""Reading a document into sections: each a heading path (outermost first), the page (PDF), and its paragraphs.

Markdown: ATX (`# Title`) and setext (`Title` over `===`/`---`) headings; fenced code is text, never headings;
links and images become their text, emphasis and code marks are dropped. HTML: the stdlib `html.parser`, h1-h6 as
headings, block elements as paragraph breaks, scripts, styles and other non-text elements left out. PDF: `pypdf`,
one section per page. Plain text: paragraphs separated by blank lines.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from persona_server.knowledge import EXTRA_HINT, KnowledgeUnavailable

SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"})


@dataclass(slots=True)
class Section:
    heading: tuple[str, ...] = ()
    page: int | None = None
    paragraphs: list[str] = field(default_factory=list)


class UnreadableDocument(ValueError):
    """The file is not a document we can read (a broken PDF, say)."""


def read_sections(path: Path, data: bytes) -> list[Section]:
    """The sections of a document, by its file name's suffix. Raises UnreadableDocument."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf_sections(data)
    text = data.decode("utf-8-sig", errors="replace")
    if suffix in (".md", ".markdown"):
        return markdown_sections(text)
    if suffix in (".html", ".htm"):
        return html_sections(text)
    return [Section(paragraphs=_plain_paragraphs(text))]


_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _plain_paragraphs(text: str) -> list[str]:
    return [p for p in (_clean(block) for block in re.split(r"\n\s*\n", text)) if p]


# -- markdown -------------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A list item or a table row: a paragraph of its own.
_LIST_ITEM = re.compile(r"^\s*(?:(?:[-*+]|\d{1,9}[.)])\s+|\|)")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-+:?\s*\|)+\s*:?-*:?\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MARKS = re.compile(r"\*\*|__|`+")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _inline(text: str) -> str:
    return _MARKS.sub("", _LINK.sub(r"\1", _IMAGE.sub(r"\1", text)))


class _Builder:
    """Sections under a stack of headings, paragraphs added one at a time."""

    def __init__(self) -> None:
        self.sections: list[Section] = [Section()]
        self._stack: list[tuple[int, str]] = []

    def heading(self, level: int, title: str) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        if title:
            self._stack.append((level, title))
        self.sections.append(Section(heading=tuple(t for _, t in self._stack)))

    def paragraph(self, text: str) -> None:
        text = text.strip()
        if text:
            self.sections[-1].paragraphs.append(text)

    def result(self) -> list[Section]:
        return [s for s in self.sections if s.paragraphs]


def markdown_sections(text: str) -> list[Section]:
    builder = _Builder()
    lines: list[str] = []  # the paragraph being read

    def flush() -> None:
        if lines:
            # Wrapped lines join with a space; each list item and table row is a paragraph of its own (short
            # ones are merged again when split into passages), so a list of long items is not one diluted passage.
            joined = lines[0].strip()
            for line in lines[1:]:
                if _LIST_ITEM.match(line):
                    builder.paragraph(_inline(joined))
                    joined = line.strip()
                else:
                    joined += " " + line.strip()
            builder.paragraph(_inline(joined))
            lines.clear()

    fence: str | None = None
    for line in _COMMENT.sub("", text).splitlines():
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
                flush()
            else:
                lines.append(line)
            continue
        if match := _FENCE.match(line):
            flush()
            fence = match.group(1)[0] * 3
            continue
        if match := _ATX.match(line):
            flush()
            builder.heading(len(match.group(1)), _clean(_inline(match.group(2) or "")))
            continue
        if (match := _SETEXT.match(line)) and len(lines) == 1:
            title = _clean(_inline(lines.pop()))
            builder.heading(1 if match.group(1)[0] == "=" else 2, title)
            continue
        if not line.strip():
            flush()
            continue
        if not _TABLE_RULE.match(line):
            lines.append(line)
    flush()
    return builder.result()


# -- HTML -----------------------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "aside", "header",
    "footer", "main", "nav", "blockquote", "pre", "hr", "figure", "figcaption", "form", "fieldset", "details",
    "summary", "address", "body", "html", "title",
})


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _Builder()
        self._skip = 0  # depth inside elements whose text is not content
        self._heading: int | None = None
        self._text: list[str] = []

    def _flush(self) -> None:
        text = _clean("".join(self._text))
        self._text.clear()
        if self._heading is not None:
            self.builder.heading(self._heading, text)
        elif text:
            self.builder.paragraph(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif not self._skip and (tag in _HEADINGS or tag in _BLOCKS):
            self._flush()
            if tag in _HEADINGS:
                self._heading = _HEADINGS[tag]

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif not self._skip and (tag in _HEADINGS or tag in _BLOCKS):
            self._flush()
            if tag in _HEADINGS:
                self._heading = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIPPED:  # <br/>, <hr/>: a break; a self-closed <script/> opens nothing
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._text.append(data)


def html_sections(text: str) -> list[Section]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser._heading = None  # an unclosed heading's text is a paragraph
    parser._flush()
    return parser.builder.result()


# -- PDF ------------------------------------------------------------------------------------------------


def _pdf_sections(data: bytes) -> list[Section]:
    try:
        import pypdf
    except ImportError:
        raise KnowledgeUnavailable(f"reading PDF files needs pypdf: {EXTRA_HINT}") from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many kinds of errors on broken files
        raise UnreadableDocument(f"not a readable PDF: {type(exc).__name__}: {exc}") from None
    return [Section(page=number, paragraphs=paragraphs)
            for number, text in enumerate(pages, 1) if (paragraphs := _plain_paragraphs(text))]
