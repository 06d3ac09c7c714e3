"""The one interface every vector database is used through: collections of chunks with vectors, KNN search.

A collection is one vector store (named by its `vs_...` id); a chunk belongs to one file of it. Vectors are
L2-normalised float32 rows, so a score is the cosine similarity (1 is the same direction). Implementations are
blocking (the service calls them in a worker thread) and must be safe to call from several threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Chunk:
    file_id: str
    position: int  # the chunk's index within its file
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    file_id: str
    position: int
    text: str
    score: float  # cosine similarity, higher is closer


class VectorBackend(ABC):
    name: str

    @abstractmethod
    def create_collection(self, collection: str, dimensions: int) -> None:
        """Make the collection if it does not exist."""

    @abstractmethod
    def delete_collection(self, collection: str) -> None:
        """Drop the collection and every chunk in it (nothing if it does not exist)."""

    @abstractmethod
    def add(self, collection: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Store chunks with their vectors (one row each, in order)."""

    @abstractmethod
    def delete_file(self, collection: str, file_id: str) -> None:
        """Remove every chunk of one file from the collection."""

    @abstractmethod
    def search(self, collection: str, vector: np.ndarray, k: int) -> list[Hit]:
        """The `k` chunks nearest to `vector`, nearest first."""

    @abstractmethod
    def count(self, collection: str, file_id: str | None = None) -> int:
        """How many chunks the collection (or one file of it) holds."""

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release connections."""


def score_from_cosine_distance(distance: float) -> float:
    # Cosine distance is 1 - similarity, in [0, 2]; similarities below 0 say "unrelated" as well as 0 does.
    return max(0.0, min(1.0, 1.0 - float(distance)))
