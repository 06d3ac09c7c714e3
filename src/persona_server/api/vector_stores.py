"""OpenAI's Vector Stores API: stores, their files (attached, chunked and embedded in the background) and search.

`POST /v1/vector_stores`, `GET` (list, one), `DELETE`; `POST /v1/vector_stores/{id}/files` (attach), `GET` its
files (list, one), `DELETE` one; `POST /v1/vector_stores/{id}/search`. Shapes as OpenAI's (`VectorStore`,
`VectorStoreFile`, `VectorStoreSearchResponse`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persona_server.api.context import json_response, read_model
from persona_server.api.errors import APIError
from persona_server.api.files import page_of, service
from persona_server.api.schemas import Lenient
from persona_server.vectorstores.chunking import Strategy, parse_strategy
from persona_server.vectorstores.service import MAX_SEARCH_RESULTS

MAX_METADATA = 16
MAX_QUERIES = 10
MAX_QUERY_CHARS = 4096


class _Body(BaseModel):
    # Unknown fields are ignored, as the chat routes do: clients send newer parameters routinely.
    model_config = ConfigDict(extra="ignore", strict=True)


def _check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's bounds on `metadata` and `attributes`: 16 pairs, keys of 64 characters, values of 512."""
    if value is None:
        return None
    if len(value) > MAX_METADATA:
        raise ValueError(f"at most {MAX_METADATA} pairs are allowed")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError("keys must be at most 64 characters")
        if isinstance(item, str) and len(item) > 512:
            raise ValueError("values must be at most 512 characters")
    return value


def _strategy(value: dict[str, Any] | None) -> Strategy:
    try:
        return parse_strategy(value)
    except ValueError as exc:
        raise APIError(400, f"Invalid value for 'chunking_strategy': {exc}", param="chunking_strategy",
                       code="invalid_value") from None


class CreateStoreRequest(_Body):
    name: Annotated[str, Lenient, Field(max_length=256)] = ""
    file_ids: Annotated[list[Annotated[str, Field(max_length=128)]], Lenient, Field(max_length=1000)] = []
    metadata: Annotated[dict[str, str] | None, Lenient] = None
    chunking_strategy: Annotated[dict[str, Any] | None, Lenient] = None
    description: Annotated[str, Lenient, Field(max_length=4096)] = ""
    expires_after: Annotated[dict[str, Any] | None, Lenient] = None

    _metadata = field_validator("metadata")(_check_metadata)


class AttachFileRequest(_Body):
    file_id: Annotated[str, Field(min_length=1, max_length=128)]
    attributes: Annotated[dict[str, str | float | bool] | None, Lenient] = None
    chunking_strategy: Annotated[dict[str, Any] | None, Lenient] = None

    _attributes = field_validator("attributes")(_check_metadata)


class RankingOptions(_Body):
    ranker: Annotated[str, Lenient] = "auto"
    score_threshold: Annotated[float, Lenient, Field(ge=0, le=1)] = 0.0


class SearchRequest(_Body):
    query: str | Annotated[list[Annotated[str, Field(max_length=MAX_QUERY_CHARS)]],
                           Field(min_length=1, max_length=MAX_QUERIES)]
    max_num_results: Annotated[int, Lenient, Field(ge=1, le=MAX_SEARCH_RESULTS)] = 10
    filters: Annotated[dict[str, Any] | None, Lenient] = None
    ranking_options: Annotated[RankingOptions | None, Lenient] = None
    rewrite_query: Annotated[bool, Lenient] = False

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and len(value) > MAX_QUERY_CHARS:
            raise ValueError(f"at most {MAX_QUERY_CHARS} characters are allowed")
        if not (value.strip() if isinstance(value, str) else all(item.strip() for item in value)):
            raise ValueError("the query must not be empty")
        return value


def _unsupported(value: Any, name: str) -> None:
    if value:
        raise APIError(400, f"'{name}' is not supported by this server.", param=name, code="unsupported_parameter")


async def create_store(request: Request) -> Response:
    """Create a vector store, optionally with files"""
    body = await read_model(request, CreateStoreRequest)
    _unsupported(body.expires_after, "expires_after")
    strategy = _strategy(body.chunking_strategy)
    stores = await service(request)
    return json_response(await stores.create_store(body.name, body.metadata, body.file_ids, strategy))


async def list_stores(request: Request) -> Response:
    """List vector stores"""
    stores = await service(request)
    return json_response(await stores.list_stores(page_of(request)))


async def retrieve_store(request: Request) -> Response:
    """Retrieve a vector store"""
    stores = await service(request)
    return json_response(await stores.get_store(request.path_params["vector_store_id"]))


async def delete_store(request: Request) -> Response:
    """Delete a vector store and its chunks (its files stay)"""
    stores = await service(request)
    return json_response(await stores.delete_store(request.path_params["vector_store_id"]))


async def attach_file(request: Request) -> Response:
    """Attach a file to a vector store (chunked and embedded in the background)"""
    body = await read_model(request, AttachFileRequest)
    strategy = _strategy(body.chunking_strategy)
    stores = await service(request)
    return json_response(await stores.attach_file(request.path_params["vector_store_id"], body.file_id,
                                                  body.attributes, strategy))


async def list_store_files(request: Request) -> Response:
    """List the files of a vector store"""
    status = request.query_params.get("filter") or None
    if status not in (None, "in_progress", "completed", "failed", "cancelled"):
        raise APIError(400, "filter must be one of in_progress, completed, failed, cancelled.", param="filter",
                       code="invalid_value")
    stores = await service(request)
    return json_response(await stores.list_store_files(request.path_params["vector_store_id"], page_of(request),
                                                       status))


async def retrieve_store_file(request: Request) -> Response:
    """Retrieve one file of a vector store"""
    stores = await service(request)
    return json_response(await stores.get_store_file(request.path_params["vector_store_id"],
                                                     request.path_params["file_id"]))


async def detach_file(request: Request) -> Response:
    """Remove a file from a vector store (the file itself stays)"""
    stores = await service(request)
    return json_response(await stores.detach_file(request.path_params["vector_store_id"],
                                                  request.path_params["file_id"]))


async def search(request: Request) -> Response:
    """Search a vector store for the chunks nearest to a query"""
    body = await read_model(request, SearchRequest)
    _unsupported(body.filters, "filters")
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    stores = await service(request)
    return json_response(await stores.search(request.path_params["vector_store_id"], queries,
                                             body.max_num_results, threshold))


def routes() -> list[Route]:
    store = "/v1/vector_stores/{vector_store_id}"
    return [
        Route("/v1/vector_stores", create_store, methods=["POST"]),
        Route("/v1/vector_stores", list_stores, methods=["GET"]),
        Route(store, retrieve_store, methods=["GET"]),
        Route(store, delete_store, methods=["DELETE"]),
        Route(store + "/files", attach_file, methods=["POST"]),
        Route(store + "/files", list_store_files, methods=["GET"]),
        Route(store + "/files/{file_id}", retrieve_store_file, methods=["GET"]),
        Route(store + "/files/{file_id}", detach_file, methods=["DELETE"]),
        Route(store + "/search", search, methods=["POST"]),
    ]
