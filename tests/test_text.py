"""max_tokens and stop sequences: the same text whether the answer is streamed or not."""

from __future__ import annotations

import pytest

from persona_server.text import TextLimiter, count_tokens, split_pieces

TEXT = "The quick brown fox, as everyone knows, jumps over the lazy dog. END of story."


def run(pieces: list[str], **limits: object) -> tuple[str, str | None]:
    limiter = TextLimiter(**limits)  # type: ignore[arg-type]
    out = "".join(limiter.feed(p) for p in pieces) + limiter.finish()
    return out, limiter.finish_reason


def test_split_pieces_loses_nothing() -> None:
    assert "".join(split_pieces(TEXT + "  \n")) == TEXT + "  \n"
    assert split_pieces("a  b") == ["a", "  b"]


def test_count_tokens_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4


@pytest.mark.parametrize("chunking", [1, 3, 7, 1000])
def test_stop_sequence_cut_is_independent_of_chunking(chunking: int) -> None:
    pieces = [TEXT[i:i + chunking] for i in range(0, len(TEXT), chunking)]
    assert run(pieces, stop=["END"]) == ("The quick brown fox, as everyone knows, jumps over the lazy dog. ", "stop")
    assert run(pieces, stop=["xyz", ", as"]) == ("The quick brown fox", "stop")


def test_partial_stop_prefix_is_released_when_it_does_not_complete() -> None:
    assert run(["ab", "c"], stop=["bd"]) == ("abc", "stop")


@pytest.mark.parametrize("chunking", [1, 5, 1000])
def test_max_tokens_truncates_with_length(chunking: int) -> None:
    pieces = [TEXT[i:i + chunking] for i in range(0, len(TEXT), chunking)]
    assert run(pieces, max_tokens=4) == ("The quick brown fox", "length")


def test_max_tokens_exactly_enough_is_a_normal_stop() -> None:
    assert run(["Hello world"], max_tokens=2) == ("Hello world", "stop")


@pytest.mark.parametrize(("limits", "pieces"), [
    ({}, ["Hello", " world", "."]),
    ({"max_tokens": 2}, ["Hello", " wor", "ld", " again"]),
    ({"stop": ["wor"]}, ["Hello", " wo", "rld"]),
])
def test_whole_equals_feeding_piece_by_piece(limits: dict, pieces: list[str]) -> None:
    one, other = TextLimiter(**limits), TextLimiter(**limits)
    assert one.whole(pieces) == run(pieces, **limits)[0]
    run_text, reason = run(pieces, **limits)
    assert other.whole(pieces) == run_text and other.finish_reason == reason
    assert one.tokens == count_tokens(run_text)


def test_the_stop_sequence_that_ended_the_text_is_named() -> None:
    limiter = TextLimiter(stop=["xyz", ", as", "fox"])
    assert limiter.whole([TEXT]) == "The quick brown "
    assert (limiter.finish_reason, limiter.stop_sequence) == ("stop", "fox")
    natural = TextLimiter(stop=["xyz"])
    natural.whole([TEXT])
    assert (natural.finish_reason, natural.stop_sequence) == ("stop", None)
    cut_first = TextLimiter(max_tokens=2, stop=["fox"])
    assert cut_first.whole([TEXT]) == "The quick"
    assert (cut_first.finish_reason, cut_first.stop_sequence) == ("length", None)
