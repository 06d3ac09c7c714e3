"""Which uploads are accepted (by extension, then by their bytes), and the text of each kind.

Accepted: plain text, Markdown, HTML, JSON (UTF-8) and PDF. The extension names the kind; the content must agree
(a PDF starts with `%PDF-`; the others decode as UTF-8 without NUL bytes, and JSON parses), so a binary renamed
`.txt` is refused.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

# Bounds on the work one PDF can ask for.
MAX_PDF_PAGES = 2000


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    media_type: str


KINDS: dict[str, Kind] = {
    ".txt": Kind("text", "text/plain"),
    ".text": Kind("text", "text/plain"),
    ".md": Kind("markdown", "text/markdown"),
    ".markdown": Kind("markdown", "text/markdown"),
    ".html": Kind("html", "text/html"),
    ".htm": Kind("html", "text/html"),
    ".json": Kind("json", "application/json"),
    ".pdf": Kind("pdf", "application/pdf"),
}
ACCEPTED = ", ".join(sorted(KINDS))


def kind_of(filename: str) -> Kind | None:
    return KINDS.get(Path(filename).suffix.lower())


class ContentCheck:
    """Fed an upload's bytes as they arrive; `problem()` says why the content does not match its kind, if so."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.head = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")() if kind.name != "pdf" else None
        self._error: str | None = None

    def feed(self, data: bytes) -> None:
        if self._error:
            return
        if len(self.head) < 8:
            self.head += data[:8]
        if self._decoder is not None:
            if b"\x00" in data:
                self._error = "it contains NUL bytes"
                return
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                self._error = "it is not UTF-8 text"

    def problem(self) -> str | None:
        if self._error:
            return self._error
        if self.kind.name == "pdf":
            return None if self.head.startswith(b"%PDF-") else "it does not start like a PDF file (%PDF-)"
        assert self._decoder is not None
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
        return None


def check_json(path: Path) -> str | None:
    try:
        json.loads(path.read_bytes())
    except ValueError as exc:
        return f"it is not valid JSON ({exc})"
    return None


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                        "pre", "blockquote", "table", "ul", "ol", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    return re.sub(r"\n\s*\n\s*", "\n\n", re.sub(r"[ \t\r\f\v]+", " ", text)).strip()


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = []
    for number, page in enumerate(reader.pages):
        if number >= MAX_PDF_PAGES:
            break
        pages.append(page.extract_text() or "")
    return "\n\n".join(pages)


def extract_text(path: Path, kind: Kind) -> str:
    """The text to chunk. Blocking: call it in a worker thread."""
    if kind.name == "pdf":
        return pdf_text(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return html_text(text) if kind.name == "html" else text
