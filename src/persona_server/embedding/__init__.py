"""Embeddings: the `Embedder` protocol, the process-wide default (all-MiniLM-L6-v2, offline) and persona upstreams.

Importable without the `embeddings` extra: `embeddings_available()` says whether the default model can run, and
`default_embedder()` raises `EmbeddingUnavailable` naming the install command when it cannot.
"""

from persona_server.embedding.base import (
    INSTALL_HINT,
    Embedded,
    Embedder,
    EmbeddingNotInstalled,
    EmbeddingUnavailable,
    normalise_rows,
)
from persona_server.embedding.factory import (
    DEFAULT_MODEL,
    default_embedder,
    embedder_from_config,
    embeddings_available,
    is_default_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "Embedded",
    "Embedder",
    "EmbeddingNotInstalled",
    "EmbeddingUnavailable",
    "default_embedder",
    "embedder_from_config",
    "embeddings_available",
    "is_default_model",
    "normalise_rows",
]
