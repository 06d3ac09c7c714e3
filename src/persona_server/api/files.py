"""OpenAI's Files API: `POST /v1/files` (multipart: `file`, `purpose`), list, retrieve, content, delete.

Files are kept under the data directory (see `vectorstores/`); an upload is bounded by `--max-upload-bytes` and
must be text, Markdown, HTML, JSON or PDF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from persona_server.api.context import json_response
from persona_server.api.errors import APIError
from persona_server.vectorstores.metadata import Page

if TYPE_CHECKING:
    from persona_server.vectorstores.service import VectorStores

PURPOSES = frozenset({"assistants", "assistants_output", "batch", "batch_output", "fine-tune",
                      "fine-tune-results", "vision", "user_data", "evals"})
# The `routes.py` table's `prefixes`: these routes are tried only for paths under them.
PREFIXES = ("/v1/files", "/v1/vector_stores")


async def service(request: Request) -> VectorStores:
    """The app's Files and Vector Stores service, opened on first use."""
    stores: VectorStores = request.app.vector_stores
    return await stores.ready()


def page_of(request: Request) -> Page:
    """OpenAI's list parameters: `limit` (1-100, default 20), `order` (`asc`/`desc`), `after`, `before`."""
    params = request.query_params
    raw = params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise APIError(400, "limit must be an integer from 1 to 100.", param="limit", code="invalid_value")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise APIError(400, "order must be 'asc' or 'desc'.", param="order", code="invalid_value")
    return Page(int(raw), order, params.get("after") or None, params.get("before") or None)  # type: ignore[arg-type]


async def create_file(request: Request) -> Response:
    """Upload a file (multipart/form-data: file, purpose)"""
    from persona_server.vectorstores.uploads import receive_upload

    stores = await service(request)
    upload = await receive_upload(request, stores.uploads_dir, stores.bounds.max_upload_bytes)
    try:
        purpose = upload.fields.get("purpose")
        if not purpose:
            raise APIError(400, "'purpose' is a required property", param="purpose")
        if purpose not in PURPOSES:
            raise APIError(400, f"Invalid value for 'purpose': expected one of {', '.join(sorted(PURPOSES))}.",
                           param="purpose", code="invalid_value")
        body = await stores.add_file(upload.path, upload.filename, purpose, upload.size, upload.kind)
    finally:
        upload.path.unlink(missing_ok=True)  # moved into place already, unless refused
    return json_response(body)


async def list_files(request: Request) -> Response:
    """List uploaded files"""
    stores = await service(request)
    return json_response(await stores.list_files(page_of(request), request.query_params.get("purpose") or None))


async def retrieve_file(request: Request) -> Response:
    """Retrieve a file's description"""
    stores = await service(request)
    return json_response(await stores.get_file(request.path_params["file_id"]))


async def file_content(request: Request) -> Response:
    """The bytes of a file, as uploaded"""
    stores = await service(request)
    path, media_type = await stores.file_content(request.path_params["file_id"])
    return FileResponse(path, media_type=media_type)


async def delete_file(request: Request) -> Response:
    """Delete a file (and its chunks from every vector store)"""
    stores = await service(request)
    return json_response(await stores.delete_file(request.path_params["file_id"]))


def routes() -> list[Route]:
    return [
        Route("/v1/files", create_file, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    ]

