"""OpenAI's static chunking (windows of N tokens overlapping by M), the accepted types' checks, HTML text."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona_server.vectorstores.chunking import Strategy, chunk_spans, count_tokens, parse_strategy, windows
from persona_server.vectorstores.extract import ContentCheck, extract_text, kind_of


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def chunks(text: str, size: int, overlap: int) -> list[str]:
    return [text[a:b] for a, b in chunk_spans(text, Strategy(size, overlap))]


def test_windows_overlap_and_cover_the_text() -> None:
    text = words(250)
    got = chunks(text, 100, 40)
    # Starts every 60 tokens; the last window holds the tail, and nothing is emitted for the overlap alone.
    assert [c.split()[0] for c in got] == ["w0", "w60", "w120", "w180"]
    assert [len(c.split()) for c in got] == [100, 100, 100, 70]
    assert got[1].split()[:40] == got[0].split()[60:]


def test_exact_multiple_leaves_no_overlap_only_chunk() -> None:
    assert [len(c.split()) for c in chunks(words(200), 100, 50)] == [100, 100, 100]
    assert [len(c.split()) for c in chunks(words(200), 100, 0)] == [100, 100]
    assert chunks(words(30), 100, 50) == [words(30)]
    assert chunks("   \n ", 100, 50) == []


def test_tokens_are_words_and_marks_and_text_keeps_its_spacing() -> None:
    assert count_tokens("Hello, world!  It's 3.5 km.") == 12  # Hello , world ! It ' s 3 . 5 km .
    text = "Line one.\n\nLine   two."
    assert chunks(text, 100, 0) == [text]


def test_the_default_is_openais() -> None:
    assert parse_strategy(None) == parse_strategy({"type": "auto"}) == Strategy(800, 400)
    assert Strategy().as_json() == {"type": "static",
                                    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    assert parse_strategy({"type": "static", "static": {"max_chunk_size_tokens": 4096,
                                                        "chunk_overlap_tokens": 2048}}) == Strategy(4096, 2048)


@pytest.mark.parametrize("value", [
    {"type": "other"}, {"type": "static"}, "auto",
    {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
    {"type": "static", "static": {"max_chunk_size_tokens": 5000, "chunk_overlap_tokens": 0}},
    {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
    {"type": "static", "static": {"max_chunk_size_tokens": 200.0, "chunk_overlap_tokens": 0}},
])
def test_bad_strategies_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_strategy(value)


def test_embedding_windows_split_long_chunks() -> None:
    text = words(300)
    parts = windows(text, 128)
    assert [len(p.split()) for p in parts] == [128, 128, 44]
    assert " ".join(parts) == text


def test_content_checks() -> None:
    pdf = kind_of("a.PDF")
    assert pdf is not None and pdf.name == "pdf"
    check = ContentCheck(pdf)
    check.feed(b"%PD")
    check.feed(b"F-1.4 ...")
    assert check.problem() is None
    text = kind_of("notes.md")
    assert text is not None
    check = ContentCheck(text)
    check.feed("caf\u00e9".encode()[:4])  # a character split across two reads is fine
    check.feed("caf\u00e9".encode()[4:])
    assert check.problem() is None
    check = ContentCheck(text)
    check.feed(b"ok\x00")
    assert check.problem() is not None
    assert kind_of("program.exe") is None and kind_of("README") is None


def test_html_text_drops_markup_scripts_and_styles(tmp_path: Path) -> None:
    html = ("<html><head><style>p{}</style><title>x</title></head><body><h1>Title</h1><p>One &amp; two.</p>"
            "<script>alert(1)</script><p>Three</p></body></html>")
    stored = tmp_path / "file-123"  # stored files are named by their id, without a suffix
    stored.write_text(html)
    kind = kind_of("page.html")
    assert kind is not None
    text = extract_text(stored, kind)
    assert "One & two." in text and "Three" in text and "Title" in text
    assert "alert" not in text and "p{}" not in text and "<" not in text
