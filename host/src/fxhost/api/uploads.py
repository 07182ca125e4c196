"""Request bodies that carry audio: raw (``--data-binary @file``) or
``multipart/form-data`` (``-F file=@file``), streamed to disk with the size limit
enforced as they arrive, so an oversized body is refused before it is all read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import Request

from fxhost.api.openapi.problems import FieldProblem, ProblemException, ValidationProblem
from fxhost.store.assets import AssetStore, UploadTooLarge

#: Form fields other than the file are small (a name); more than this is refused.
MAX_FIELD_BYTES = 4096


@dataclass
class Received:
    """A body stored in a temporary file of the store, not yet an asset."""

    temp: object  # pathlib.Path
    size: int
    sha256: str
    #: The file name the client gave (multipart filename, or ``name`` field), if any.
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def check_declared_length(request: Request, limit: int) -> None:
    """413 before reading anything when Content-Length already says too much."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ProblemException(400, "Content-Length is not a number") from None
        if size > limit:
            raise UploadTooLarge(limit)


async def receive_audio(request: Request, store: AssetStore, *, keep: bool = True) -> Received:
    """Store the audio of a request body in a temporary file (raw or multipart);
    ``keep`` False for a body used once (no fsync, no hash)."""
    check_declared_length(request, store.max_upload_bytes)
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise ProblemException(400, "multipart/form-data without a boundary")
        return await _receive_multipart(request, store, boundary, keep)
    temp, size, sha256 = await store.receive(_raw_chunks(request), keep=keep)
    if size == 0:
        temp.unlink(missing_ok=True)
        raise ValidationProblem([FieldProblem("body", "the body is empty; send the audio file as the body")])
    return Received(temp, size, sha256)


async def _raw_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


class _FormState:
    """Callbacks of python-multipart's streaming parser: the ``file`` part's bytes go to
    ``file_chunks`` as they are parsed; small text fields are collected."""

    def __init__(self) -> None:
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.part_name: str | None = None
        self.part_filename: str | None = None
        self.in_file = False
        self.file_seen = False
        self.filename: str | None = None
        self.file_chunks: list[bytes] = []
        self.fields: dict[str, str] = {}
        self.field_buffer = bytearray()
        self.finished = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self._append("header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._append("header_value", d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def _append(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def on_part_begin(self) -> None:
        self.headers = {}
        self.part_name = self.part_filename = None
        self.field_buffer = bytearray()

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        filename = params.get(b"filename")
        self.part_name = name.decode("utf-8", "replace") if name is not None else None
        self.part_filename = filename.decode("utf-8", "replace") if filename is not None else None
        if self.part_name == "file":
            if self.file_seen:
                raise ProblemException(400, "multipart/form-data: more than one 'file' part")
            self.in_file = self.file_seen = True
            self.filename = self.part_filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.file_chunks.append(data[start:end])
        else:
            self.field_buffer += data[start:end]
            if len(self.field_buffer) > MAX_FIELD_BYTES:
                raise ValidationProblem([FieldProblem(self.part_name or "form", "form field is too long")])

    def on_part_end(self) -> None:
        if self.in_file:
            self.in_file = False
        elif self.part_name is not None:
            self.fields[self.part_name] = self.field_buffer.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.finished = True


async def _receive_multipart(request: Request, store: AssetStore, boundary: bytes, keep: bool) -> Received:
    state = _FormState()
    parser = MultipartParser(boundary, state.callbacks())
    limit = store.max_upload_bytes

    async def file_chunks() -> AsyncIterator[bytes]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise UploadTooLarge(limit)
            try:
                parser.write(chunk)
            except MultipartParseError as error:
                raise ProblemException(400, f"malformed multipart/form-data body: {error}") from None
            if state.file_chunks:
                pending, state.file_chunks = state.file_chunks, []
                for piece in pending:
                    yield piece
        parser.finalize()

    temp, size, sha256 = await store.receive(file_chunks(), keep=keep)
    problem = None
    if not state.file_seen:
        problem = ValidationProblem([FieldProblem("file", "the form has no 'file' part")])
    elif not state.finished:
        problem = ProblemException(400, "the multipart/form-data body ends before its closing boundary")
    elif size == 0:
        problem = ValidationProblem([FieldProblem("file", "the file is empty")])
    if problem is not None:
        temp.unlink(missing_ok=True)
        raise problem
    return Received(temp, size, sha256, filename=state.filename, fields=state.fields)
