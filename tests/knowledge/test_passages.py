"""Reading documents into sections and passages: headings, pages, paragraphs, size bounds, answer trimming."""

from __future__ import annotations

from pathlib import Path

from persona_server.knowledge.documents import html_sections, markdown_sections, read_sections
from persona_server.knowledge.passages import excerpt, sentences, split_sections, trim_to_sentences
from persona_server.knowledge.retrieval import fuse

from .documents import make_pdf


def test_markdown_headings_nest_and_code_fences_are_not_headings() -> None:
    text = """Intro line before any heading.

# Guide
Welcome to the [guide](http://example.org) with **bold** words and `code`.

## Setup
First step,
wrapped over two lines.

- one item
- another item

| name | what |
| --- | :-: |
| a | first |

```
# not a heading
```

Install
-------
The setext heading is level two.

### Deep
Deep text.

## Next
Next text.
"""
    sections = markdown_sections(text)
    assert [(s.heading, s.paragraphs) for s in sections] == [
        ((), ["Intro line before any heading."]),
        (("Guide",), ["Welcome to the guide with bold words and code."]),
        (("Guide", "Setup"), ["First step, wrapped over two lines.", "- one item", "- another item",
                              "| name | what |", "| a | first |",
                              "# not a heading"]),
        (("Guide", "Install"), ["The setext heading is level two."]),
        (("Guide", "Install", "Deep"), ["Deep text."]),
        (("Guide", "Next"), ["Next text."]),
    ]


def test_html_text_without_scripts_styles_or_head() -> None:
    html = """<html><head><title>T</title><style>p {color: red}</style></head><body>
    <script>var secret = "no";</script>
    <h1>Main &amp; only</h1><p>First <b>para</b>graph.</p><div>Second<br>line</div>
    <h3>Sub</h3><ul><li>alpha</li><li>beta</li></ul><noscript>enable js</noscript>
    <h2>Other</h2>Loose text <script/>after.
    </body></html>"""
    sections = html_sections(html)
    assert [(s.heading, s.paragraphs) for s in sections] == [
        (("Main & only",), ["First paragraph.", "Second", "line"]),
        (("Main & only", "Sub"), ["alpha", "beta"]),
        (("Main & only", "Other"), ["Loose text after."]),
    ]


def test_pdf_sections_are_pages_and_plain_text_has_paragraphs(tmp_path: Path) -> None:
    pdf = make_pdf([["Page one (first)."], [], ["Page three text."]])
    sections = read_sections(tmp_path / "a.PDF", pdf)
    assert [(s.page, s.paragraphs) for s in sections] == [(1, ["Page one (first)."]), (3, ["Page three text."])]
    text = read_sections(tmp_path / "notes.txt", "\ufeffOne\nline.\n\n\n Two. \n".encode())
    assert [s.paragraphs for s in text] == [["One line.", "Two."]]


def test_passages_are_bounded_merge_short_paragraphs_and_never_cross_headings() -> None:
    long_sentence = "word " * 60  # 300 characters, no sentence end
    sections = markdown_sections(
        "# A\n\nShort.\n\nAlso short.\n\n" + ("A sentence of about forty characters. " * 10) + "\n\n"
        f"{long_sentence}\n\n# B\n\nTiny.\n")
    passages = list(split_sections(sections, max_chars=200))
    assert all(len(p.text) <= 200 for p in passages)
    assert passages[0].text == "Short.\n\nAlso short."  # short ones merged (the next one does not fit)
    assert passages[-1].heading == ("B",) and passages[-1].text == "Tiny."
    assert {p.heading for p in passages[:-1]} == {("A",)}
    # Long paragraphs are split at sentence ends; the run-on "sentence" at word breaks.
    assert all(p.text.endswith((".", "word")) for p in passages)
    joined = " ".join(p.text.replace("\n\n", " ") for p in passages[:-1])
    assert joined.split() == ("Short. Also short. " + "A sentence of about forty characters. " * 10
                              + long_sentence).split()


def test_answers_are_whole_sentences() -> None:
    text = "First sentence here. Second one follows! Third? Fourth sentence is the last."
    assert sentences(text) == ["First sentence here.", "Second one follows!", "Third?",
                               "Fourth sentence is the last."]
    assert trim_to_sentences(text, 45) == "First sentence here. Second one follows!"
    assert trim_to_sentences(text, 10) == "First…"
    assert trim_to_sentences(text, 500) == text
    # Too long to give whole: start at the sentence that shares the question's words.
    assert excerpt(text, "which sentence is last?", 40) == "Fourth sentence is the last."
    assert excerpt(text, "unrelated words", 30) == "First sentence here."


def test_reciprocal_rank_fusion_prefers_what_both_rankings_like() -> None:
    fused = [item for item, _ in fuse([1, 2, 3], [3, 4, 1])]
    assert fused[:2] == [1, 3] and set(fused) == {1, 2, 3, 4}
    assert fuse([], []) == []
