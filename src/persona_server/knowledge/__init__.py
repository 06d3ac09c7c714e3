"""Answering from your own documents: reading files into passages, indexing them, retrieving the best ones.

- `documents`: a file (`.txt`, `.md`, `.html`, `.pdf`) as sections (heading path, page, paragraphs);
- `passages`: sections split into passages of bounded size, and answers trimmed to whole sentences;
- `sqlite`: a SQLite connection with the `sqlite-vec` extension loaded;
- `store`: the index database (files, passages, vectors), kept in step with the files incrementally;
- `retrieval`: hybrid search (BM25 + embedding KNN, fused by reciprocal rank) behind the `PassageIndex` protocol;
- `bases`: one shared knowledge base per set of paths in a process, polled for changes.

The solver that uses them is `solvers/knowledge.py`. Everything here needs the `knowledge` extra.
"""

from __future__ import annotations

EXTRA_HINT = "pip install 'persona-server[knowledge]'"


class KnowledgeUnavailable(RuntimeError):
    """A library the knowledge base needs is missing; the message says what to install."""


def missing_modules() -> list[str]:
    """The modules of the `knowledge` extra this install lacks (empty when the knowledge base can run)."""
    import importlib.util
    import sqlite3

    needed = ["sqlite_vec", "pypdf", "bm25s"]
    if not hasattr(sqlite3.Connection, "enable_load_extension"):  # see knowledge/sqlite.py
        needed.append("pysqlite3")
    return [name for name in needed if importlib.util.find_spec(name) is None]
