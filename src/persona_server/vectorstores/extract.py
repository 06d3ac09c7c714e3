"""Which uploads are accepted (by extension, then by their bytes), and the text of each kind.

Accepted: plain text, Markdown, HTML, JSON (UTF-8) and PDF. The extension names the kind; the content must agree
(a PDF starts with `%PDF-`; the others decode as UTF-8 without NUL bytes, and JSON parses), so a binary renamed
`.txt` is refused.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path


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


def extract_text(path: Path, kind: Kind) -> str:
    """The text to chunk: the document read as the knowledge solver reads it (`knowledge/documents.py`: markup
    dropped, headings and paragraphs kept, PDF pages' text), JSON as it is. Blocking: call it in a worker thread."""
    data = path.read_bytes()
    if kind.name == "json":
        return data.decode("utf-8", errors="replace")
    from persona_server.knowledge.documents import read_sections

    blocks: list[str] = []
    for section in read_sections(path.with_suffix(_SUFFIXES[kind.name]), data):
        if section.heading:
            blocks.append(section.heading[-1])
        blocks.extend(section.paragraphs)
    return "\n\n".join(blocks)


# The suffix `read_sections` goes by, per kind (a stored file has no suffix: its name is its id).
_SUFFIXES = {"text": ".txt", "markdown": ".md", "html": ".html", "pdf": ".pdf"}
