"""Receiving `POST /v1/files`: a multipart body streamed to a temporary file, never held in memory whole.

Bounded: the file part by `max_upload_bytes` (413 as soon as it passes, from Content-Length before reading when
it says so), the other fields in count and size, one file part. The file's kind is checked from its name before
its bytes are read, and its bytes as they arrive (see `extract.ContentCheck`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request

from persona_server.api.errors import APIError
from persona_server.api.streaming import ClientGone
from persona_server.limits import refuse
from persona_server.vectorstores import INSTALL_HINT
from persona_server.vectorstores.extract import ACCEPTED, ContentCheck, Kind, check_json, kind_of

MAX_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024
# Multipart framing and the small fields around the file part.
_OVERHEAD = MAX_FIELDS * MAX_FIELD_BYTES
_FLUSH_BYTES = 1 << 20


@dataclass
class Upload:
    path: Path
    filename: str
    kind: Kind
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def _bad(message: str, param: str | None = None, code: str | None = "invalid_file") -> APIError:
    return APIError(400, message, param=param, code=code)


def _too_large(limit: int) -> APIError:
    error = refuse("upload_size", 413, f"The file is larger than the server's upload limit of {limit} bytes.")
    error.code = "file_too_large"
    error.headers = {"Connection": "close"}  # the rest of the body is never read
    return error


class _Parts:
    """The multipart parser's callbacks: fields into memory, the one file part into a temporary file."""

    def __init__(self, upload_dir: Path, limit: int) -> None:
        self.upload_dir = upload_dir
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.name: str | None = None
        self.value = bytearray()
        self.file: Any = None
        self.path: Path | None = None
        self.filename: str | None = None
        self.kind: Kind | None = None
        self.check: ContentCheck | None = None
        self.in_file = False
        self.size = 0
        self.pending = bytearray()
        self.error: APIError | None = None

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
                "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished}

    def part_begin(self) -> None:
        self.headers = {}
        self.value = bytearray()
        self.in_file = False

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                self.error = _bad(f"At most {MAX_FIELDS} form fields are allowed.", code=None)
            return
        if self.name != "file" or self.path is not None:
            self.error = _bad("Send exactly one file, in the form field 'file'.", param="file", code=None)
            return
        filename = os.path.basename(options[b"filename"].decode("utf-8", "replace").replace("\\", "/"))
        self.filename = filename[:255]
        self.kind = kind_of(filename)
        if self.kind is None:
            self.error = _bad(f"Files of this type are not supported ({filename!r}); accepted: {ACCEPTED}.",
                              param="file", code="unsupported_file")
            return
        self.check = ContentCheck(self.kind)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.upload_dir)
        self.file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.in_file = True

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        piece = data[start:end]
        if not self.in_file:
            self.value.extend(piece)
            if len(self.value) > MAX_FIELD_BYTES:
                self.error = _bad(f"A form field is larger than {MAX_FIELD_BYTES} bytes.", param=self.name)
            return
        self.size += len(piece)
        if self.size > self.limit:
            self.error = _too_large(self.limit)
            return
        assert self.check is not None
        self.check.feed(piece)
        self.pending.extend(piece)

    def part_end(self) -> None:
        if not self.in_file and self.name is not None and self.error is None:
            self.fields[self.name] = self.value.decode("utf-8", "replace")

    def take_pending(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data

    def discard(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_upload(request: Request, upload_dir: Path, limit: int) -> Upload:
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:
        raise APIError(501, f"File uploads need python-multipart ({INSTALL_HINT}).", code="not_implemented",
                       type="server_error") from None
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _bad("Uploads must be multipart/form-data, with the file in the field 'file' and 'purpose'.",
                   code="invalid_request")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + _OVERHEAD:
        raise _too_large(limit)
    parts = _Parts(upload_dir, limit)
    parser = MultipartParser(boundary, parts.callbacks(), max_size=limit + _OVERHEAD)
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if parts.error is not None:
                    raise parts.error
                if len(parts.pending) >= _FLUSH_BYTES:
                    await anyio.to_thread.run_sync(parts.file.write, parts.take_pending())
            parser.finalize()
        except ClientDisconnect:
            raise ClientGone from None
        except ValueError as exc:  # python-multipart's malformed-body errors derive from ValueError
            raise _bad(f"The multipart body is malformed: {exc}", code="invalid_request") from None
        if parts.error is not None:
            raise parts.error
        if parts.path is None or parts.kind is None or parts.filename is None:
            raise _bad("No file was sent: put it in the form field 'file'.", param="file", code=None)
        await anyio.to_thread.run_sync(parts.file.write, parts.take_pending())
        await anyio.to_thread.run_sync(parts.file.close)
        assert parts.check is not None
        problem = parts.check.problem()
        if problem is None and parts.kind.name == "json":
            problem = await anyio.to_thread.run_sync(check_json, parts.path)
        if problem is not None:
            raise _bad(f"The file {parts.filename!r} is not a valid {parts.kind.name} file: {problem}.",
                       param="file", code="invalid_file")
        return Upload(parts.path, parts.filename, parts.kind, parts.size, parts.fields)
    except BaseException:
        parts.discard()
        raise
