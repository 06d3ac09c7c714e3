"""OpenAI-style Files and Vector Stores: uploads kept on disk, their chunks embedded into a vector database.

Files and the metadata of stores (ids, names, counts, statuses) live in one SQLite database under the data
directory; the vectors live either in that same file (the `sqlite-vec` extension, the default) or on a Chroma
server (`--vector-db http://HOST:PORT`). The routes are in `api/files.py` and `api/vector_stores.py`.
"""

from __future__ import annotations

EXTRA = "vectorstores"
INSTALL_HINT = f"pip install 'persona-server[{EXTRA}]'"
CHROMA_HINT = "pip install 'persona-server[chroma]'"


class VectorStoreUnavailable(RuntimeError):
    """A package the feature needs is missing, or the vector database cannot be reached."""
