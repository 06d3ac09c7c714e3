"""Vectors on a Chroma server (`--vector-db http://HOST:PORT`), through the `chromadb` package's HTTP client.

One Chroma collection per vector store, named by its `vs_...` id, with cosine distance. We compute the
embeddings ourselves, so collections are made without an embedding function (Chroma's default one would
download a model).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from persona_server.vectorstores import CHROMA_HINT, VectorStoreUnavailable
from persona_server.vectorstores.backend import Chunk, Hit, VectorBackend, score_from_cosine_distance

# Chroma refuses larger batches; stay well under its limit.
_ADD_BATCH = 1000


def parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of `http://HOST:PORT`; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected http://HOST:PORT, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 8000)
    return parts.hostname, port, parts.scheme == "https"


def check_installed() -> None:
    try:
        import chromadb  # noqa: F401
    except ImportError:
        raise VectorStoreUnavailable(f"--vector-db needs the chromadb client ({CHROMA_HINT})") from None


class ChromaBackend(VectorBackend):
    name = "chroma"

    def __init__(self, url: str) -> None:
        check_installed()
        self.url = url
        self._client: Any = None
        self._lock = threading.Lock()
        self._collections: dict[str, Any] = {}

    def _connect(self) -> Any:
        # Connecting is lazy: the server starts even while the Chroma server is still coming up.
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings

                host, port, ssl = parse_url(self.url)
                try:
                    self._client = chromadb.HttpClient(host=host, port=port, ssl=ssl,
                                                       settings=Settings(anonymized_telemetry=False))
                except Exception as exc:
                    raise VectorStoreUnavailable(f"cannot reach the Chroma server at {self.url}: {exc}") from None
            return self._client

    def _collection(self, collection: str, create: bool = False) -> Any:
        found = self._collections.get(collection)
        if found is not None:
            return found
        client = self._connect()
        if create:
            found = client.get_or_create_collection(collection, metadata={"hnsw:space": "cosine"},
                                                    embedding_function=None)
        else:
            try:
                found = client.get_collection(collection, embedding_function=None)
            except Exception:  # chromadb raises NotFoundError (1.x) or ValueError (0.x)
                return None
        self._collections[collection] = found
        return found

    def create_collection(self, collection: str, dimensions: int) -> None:
        self._collection(collection, create=True)

    def delete_collection(self, collection: str) -> None:
        self._collections.pop(collection, None)
        try:
            self._connect().delete_collection(collection)
        except VectorStoreUnavailable:
            raise
        except Exception:  # already gone
            pass

    def add(self, collection: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        target = self._collection(collection, create=True)
        for start in range(0, len(chunks), _ADD_BATCH):
            batch = chunks[start:start + _ADD_BATCH]
            target.upsert(
                ids=[f"{chunk.file_id}:{chunk.position}" for chunk in batch],
                embeddings=np.asarray(vectors[start:start + _ADD_BATCH], dtype=np.float32),
                documents=[chunk.text for chunk in batch],
                metadatas=[{"file_id": chunk.file_id, "position": chunk.position} for chunk in batch],
            )

    def delete_file(self, collection: str, file_id: str) -> None:
        target = self._collection(collection)
        if target is not None:
            target.delete(where={"file_id": file_id})

    def search(self, collection: str, vector: np.ndarray, k: int) -> list[Hit]:
        target = self._collection(collection)
        if target is None:
            return []
        result = target.query(query_embeddings=np.asarray([vector], dtype=np.float32), n_results=int(k),
                              include=["documents", "metadatas", "distances"])
        return [Hit(str(meta["file_id"]), int(meta["position"]), text or "", score_from_cosine_distance(distance))
                for text, meta, distance in zip(result["documents"][0], result["metadatas"][0],
                                                result["distances"][0], strict=True)]

    def count(self, collection: str, file_id: str | None = None) -> int:
        target = self._collection(collection)
        if target is None:
            return 0
        if file_id is None:
            return int(target.count())
        return len(target.get(where={"file_id": file_id}, include=[])["ids"])
