"""What every protocol's embedding route shares: which embedder a `model` names, the bounds on inputs, and
running the embedder with its failures as client errors.

`model` empty or absent, or `all-minilm` (any tag): the built-in model. A persona's name: the embedder its
persona file names (`"embedder": {...}`, see persona_server.embedding.factory), else the built-in one. Any other
name: the built-in one too, unless models are strict (`--strict-models`), then a 404 in the route's format.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from persona_server import metrics
from persona_server.api.context import server_state
from persona_server.api.errors import APIError
from persona_server.api.streaming import unless_disconnected
from persona_server.catalog import Catalog, model_key
from persona_server.embedding import (
    DEFAULT_MODEL,
    Embedded,
    Embedder,
    EmbeddingNotInstalled,
    EmbeddingUnavailable,
    default_embedder,
    embedder_from_config,
    embeddings_available,
    is_default_model,
)
from persona_server.embedding.graph import GRAPH_VERSION
from persona_server.limits import refuse
from persona_server.persona import Persona
from persona_server.solvers.base import SolverContext

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_INPUT_CHARS = 100_000  # one input; the model reads its first 256 word pieces anyway
MAX_TOTAL_CHARS = 1_000_000

# One upstream embedder per persona version: a reloaded persona gets a new one, a retired one takes its own along.
_persona_embedders: weakref.WeakKeyDictionary[Persona, Embedder] = weakref.WeakKeyDictionary()


def default_listed() -> bool:
    """Whether model lists name the built-in embedding model (only when it can run)."""
    return embeddings_available()


def pick_embedder(request: Request, model: str | None, *, not_found: str) -> tuple[Embedder, str]:
    """The embedder `model` names and the model name to answer with. `not_found` is the 404's message."""
    state = server_state(request)
    if model is not None and not isinstance(model, str):
        raise APIError(400, "'model' must be a string", param="model")
    persona = None if is_default_model(model) else state.catalog.get(model or "")
    if persona is None and not is_default_model(model) and state.settings.strict_models:
        metrics.record_refusal("unknown_model")
        raise APIError(404, not_found, param="model", code="model_not_found")
    if persona is not None:
        config = persona.spec.blocks.get("embedder")
        if config:
            return _persona_embedder(persona, config, state.catalog.http), persona.name
    try:
        return default_embedder(), DEFAULT_MODEL
    except EmbeddingNotInstalled as exc:
        raise APIError(501, str(exc), param="model", code="embeddings_not_installed") from None


def _persona_embedder(persona: Persona, config: Any, http: Any) -> Embedder:
    embedder = _persona_embedders.get(persona)
    if embedder is None:
        if not isinstance(config, dict):
            raise APIError(500, f"persona {persona.name!r}: 'embedder' must be a JSON object", code="bad_persona")
        try:
            embedder = embedder_from_config(config, SolverContext(persona=persona.name, http=http))
        except ValueError as exc:
            raise APIError(500, f"persona {persona.name!r}: {exc}", code="bad_persona") from None
        except EmbeddingNotInstalled as exc:
            raise APIError(501, str(exc), param="model", code="embeddings_not_installed") from None
        _persona_embedders[persona] = embedder
    return embedder


def check_texts(value: Any, param: str, *, allow_empty_list: bool = False) -> list[str]:
    """A string or a list of strings, within the bounds; anything else (token-id arrays too) is a 400."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise APIError(400, f"'{param}' must be a string or a list of strings (token-id arrays are not supported)",
                       param=param, code="invalid_value")
    if not texts and not allow_empty_list:
        raise APIError(400, f"'{param}' must not be empty", param=param, code="invalid_value")
    if len(texts) > MAX_INPUTS:
        raise refuse("embedding_inputs", 400, f"'{param}' may hold at most {MAX_INPUTS} inputs, got {len(texts)}",
                     param=param)
    total = 0
    for index, text in enumerate(texts):
        if len(text) > MAX_INPUT_CHARS:
            raise refuse("embedding_input_size", 413,
                         f"'{param}[{index}]' is longer than {MAX_INPUT_CHARS} characters", param=param)
        total += len(text)
    if total > MAX_TOTAL_CHARS:
        raise refuse("embedding_input_size", 413, f"'{param}' holds more than {MAX_TOTAL_CHARS} characters in all",
                     param=param)
    return texts


async def embed_texts(request: Request, embedder: Embedder, texts: Sequence[str]) -> Embedded:
    """The texts' vectors; an embedder that cannot serve is a 501 (not installed) or 502 (upstream failed)."""
    try:
        return await unless_disconnected(request, embedder.embed_with_usage(texts))
    except EmbeddingNotInstalled as exc:
        raise APIError(501, str(exc), code="embeddings_not_installed") from None
    except EmbeddingUnavailable as exc:
        raise APIError(502, str(exc), code="embedder_failed") from None


# -- the built-in model in model lists ----------------------------------------------------------------------


def _listed(catalog: Catalog) -> bool:
    # A persona of the same name wins the name (chat requests reach it); the list names it once.
    return default_listed() and catalog.get(DEFAULT_MODEL) is None


def openai_model_entries(catalog: Catalog, created: int) -> list[dict[str, Any]]:
    """`all-minilm` in `/v1/models`, when the model can run here."""
    if not _listed(catalog):
        return []
    return [openai_model_entry(created)]


def openai_model_entry(created: int) -> dict[str, Any]:
    return {"id": DEFAULT_MODEL, "object": "model", "created": created, "owned_by": "persona-server"}


def is_listed_default(catalog: Catalog, model_id: str) -> bool:
    """Whether `model_id` names the built-in embedding model in model look-ups (not a persona of that name)."""
    return model_key(model_id) == DEFAULT_MODEL and _listed(catalog)


@functools.cache
def _weights_size() -> int:
    from persona_server.embedding.local import model_dir

    return sum(f.stat().st_size for f in model_dir().rglob("*") if f.is_file())


def ollama_model_entries(catalog: Catalog, modified_at: str) -> list[dict[str, Any]]:
    """`all-minilm:latest` in `/api/tags`, when the model can run here."""
    return ollama_model_entries_unchecked(modified_at) if _listed(catalog) else []


def ollama_model_entries_unchecked(modified_at: str) -> list[dict[str, Any]]:
    name = f"{DEFAULT_MODEL}:latest"
    return [{
        "name": name,
        "model": name,
        "modified_at": modified_at,
        "size": _weights_size(),
        "digest": hashlib.sha256(f"{DEFAULT_MODEL}/onnx/{GRAPH_VERSION}".encode()).hexdigest(),
        "details": {"parent_model": "", "format": "onnx", "family": "bert", "families": ["bert"],
                    "parameter_size": "23M", "quantization_level": "F32"},
    }]
