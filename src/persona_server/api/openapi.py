"""The OpenAPI 3.1 document of the server (`GET /openapi.json`), generated from the route table.

Each protocol (api/routes.py) names its routes and, per endpoint, the pydantic model of its request body; the
schemas are those models' own (`model_json_schema`), so the document cannot drift from what is validated. Every
operation lists the error shape of its protocol: OpenAI's `{"error": {...}}`, Ollama's `{"error": "..."}` under
`/api/`, or the one a vendor protocol names (`Protocol.error`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import Route

from persona_server import __version__
from persona_server.api.errors import is_ollama_path

# A request body: the model validating it, or a JSON schema where the handler reads a few fields by hand.
Body = type[BaseModel] | dict[str, Any]
_PATH_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_REF = "#/components/schemas/{model}"

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        },
    },
}
OLLAMA_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


@dataclass(frozen=True, slots=True)
class Protocol:
    """One wire protocol's entry in the route table: its routes, and the request body of each endpoint."""

    tag: str
    routes: Callable[[], list[Route]]
    bodies: Mapping[Callable[..., Any], Body] = field(default_factory=dict)
    # Routes anyone may call, even when the server has an API key.
    open_paths: frozenset[str] = frozenset()
    # A vendor protocol whose paths all start with one of these is routed as one group (api/routing.py).
    prefixes: tuple[str, ...] = ()
    # The protocol's own error body, as (component name, JSON schema), where it is neither OpenAI's nor Ollama's.
    error: tuple[str, dict[str, Any]] | None = None


def _error_responses(path: str, protocol: Protocol) -> dict[str, Any]:
    name = protocol.error[0] if protocol.error else "OllamaError" if is_ollama_path(path) else "OpenAIError"
    ref = {"$ref": f"#/components/responses/{name}"}
    return {"4XX": ref, "5XX": ref}


def _error_response(protocol: str, schema: str) -> dict[str, Any]:
    return {"description": f"An error, in {protocol}'s format",
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=schema)}}}}


def build_document(protocols: Sequence[Protocol]) -> dict[str, Any]:
    models = sorted({body for p in protocols for body in p.bodies.values() if isinstance(body, type)},
                    key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    # The vendor protocols' error bodies, by component name (Cohere's v1 and v2 share one).
    vendor: dict[str, tuple[str, dict[str, Any]]] = {}
    for protocol in protocols:
        if protocol.error:
            vendor.setdefault(protocol.error[0], (protocol.tag, protocol.error[1]))
    for protocol in protocols:
        for route in protocol.routes():
            path = _PATH_PARAM.sub(r"{\1}", route.path)
            params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in route.param_convertors]
            for method in sorted((route.methods or set()) - {"HEAD"}):
                operation: dict[str, Any] = {
                    "tags": [protocol.tag],
                    "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_"),
                    "summary": (route.endpoint.__doc__ or route.name).strip().splitlines()[0],
                    "responses": {"200": {"description": "Success",
                                          "content": {"application/json": {"schema": {}}}},
                                  **_error_responses(path, protocol)},
                }
                if params:
                    operation["parameters"] = params
                body = protocol.bodies.get(route.endpoint)
                if body is not None:
                    schema = refs[(body, "validation")] if isinstance(body, type) else body
                    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
                if route.path in protocol.open_paths:
                    operation["security"] = []
                paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "persona-server", "version": __version__,
                 "description": "Personas (chains of question solvers) as chat models on the OpenAI, Ollama, "
                                "Anthropic, Gemini and Bedrock APIs."},
        "paths": paths,
        "components": {
            "schemas": {**defs.get("$defs", {}), "OpenAIErrorBody": OPENAI_ERROR, "OllamaErrorBody": OLLAMA_ERROR,
                        **{f"{name}Body": schema for name, (_, schema) in vendor.items()}},
            "responses": {
                "OpenAIError": _error_response("OpenAI", "OpenAIErrorBody"),
                "OllamaError": _error_response("Ollama", "OllamaErrorBody"),
                **{name: _error_response(tag, f"{name}Body") for name, (tag, _) in vendor.items()},
            },
            # Required only when the server runs with an API key.
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
