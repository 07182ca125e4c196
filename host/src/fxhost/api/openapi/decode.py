"""Requests decoded once, into the msgspec types their routes declare: the query string
(:func:`decode_query`) and JSON bodies (:func:`decode_json_body`), with errors that
say where the request is wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import msgspec
from fxhost_sdk import FieldError
from fxhost_sdk.host import convert, field_error
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection

from fxhost.api.openapi.problems import FieldProblem, ProblemException, ValidationProblem

T = TypeVar("T")


@cache
def multi_valued(query_type: type) -> frozenset[str]:
    """Encoded names of the fields of ``query_type`` that take repeated parameters (lists...)."""
    info = msgspec.inspect.type_info(query_type)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"a query type must be a msgspec.Struct, not {query_type!r}")
    multi = set()
    for f in info.fields:
        kind = f.type.type if isinstance(f.type, msgspec.inspect.Metadata) else f.type
        if isinstance(kind, msgspec.inspect.UnionType):
            kinds = [k.type if isinstance(k, msgspec.inspect.Metadata) else k for k in kind.types]
        else:
            kinds = [kind]
        seq = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)
        seq += (msgspec.inspect.VarTupleType,)
        if any(isinstance(k, seq) for k in kinds):
            multi.add(f.encode_name)
    return frozenset(multi)


def decode_query(source: HTTPConnection | QueryParams | Mapping[str, str], query_type: type[T]) -> T:
    """The query string of a request (or WebSocket) validated into ``query_type``.

    Strings are converted to the declared types (``?limit=5`` gives ``limit=5``); a
    repeated parameter fills a list field (``?tag=a&tag=b``), for other fields the last
    one wins. Raises :class:`ValidationProblem` naming the parameter (``limit: Expected
    int, got str``).
    """
    if isinstance(source, HTTPConnection):
        _check_utf8_query(source.scope.get("query_string", b""))
    params = source.query_params if isinstance(source, HTTPConnection) else source
    items = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    multi = multi_valued(query_type)
    data: dict[str, Any] = {}
    for key, value in items:
        if key in multi:
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    try:
        return convert(data, query_type, strict=False)
    except FieldError as error:
        raise ValidationProblem.of(error, f"The query string is invalid: {error}") from None


def _check_utf8_query(raw: bytes) -> None:
    """400 naming the parameter whose (percent-decoded) value is not UTF-8: Starlette
    would quietly turn it into U+FFFD, and a name would be stored with them."""
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        for part in (key, value):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                name = unquote_to_bytes(key).decode("utf-8", "replace") if part is value else "query"
                raise ProblemException(
                    400,
                    f"The query string is not valid UTF-8 in {name!r}.",
                    errors=[FieldProblem(name, "not valid UTF-8")],
                ) from None


_BYTE = re.compile(r"\(byte (\d+)\)")


def _where(raw: bytes, position: int) -> str:
    line = raw.count(b"\n", 0, position) + 1
    column = position - (raw.rfind(b"\n", 0, position) + 1) + 1
    return f"line {line}, column {column} (byte {position})"


def decode_json_body(raw: bytes, body_type: type[T]) -> T:
    """A JSON request body decoded and validated into ``body_type``.

    Raises :class:`ProblemException` (400) when the body is empty or not JSON, saying
    where it breaks, and :class:`ValidationProblem` (422) naming the failing field
    (``steps[0].params.room_size: Expected float <= 1.0``).
    """
    if not raw.strip():
        raise ProblemException(400, f"The request body is empty; expected JSON ({type_name(body_type)}).")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as error:
        decoded = _with_integral_floats_as_ints(raw, body_type)
        if decoded is not None:
            return decoded
        invalid = field_error(error)
        raise ValidationProblem.of(invalid, f"The request body is invalid: {invalid}") from None
    except UnicodeDecodeError:  # msgspec checks UTF-8 string by string, and says where in the string
        where = _where(raw, _bad_utf8_at(raw))
        raise ProblemException(400, f"The request body is not valid UTF-8 at {where}.") from None
    except RecursionError:
        raise ProblemException(400, "The request body is not valid JSON: it is nested too deeply.") from None
    except msgspec.DecodeError as error:
        message = str(error)
        if message == "Input data was truncated":
            detail = "The request body is not valid JSON: it ends before the JSON value is complete."
        else:
            match = _BYTE.search(message)
            if match:
                reason = message[: match.start()].removeprefix("JSON is malformed:").strip()
                detail = f"The request body is not valid JSON: {reason} at {_where(raw, int(match[1]))}."
            else:
                detail = f"The request body is not valid JSON: {message}."
        raise ProblemException(400, detail) from None


def _bad_utf8_at(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _with_integral_floats_as_ints(raw: bytes, body_type: type[T]) -> T | None:
    """The body decoded again with every number that has no fractional part (``600.0``)
    read as an integer, as JSON Schema reads it (its ``integer`` accepts ``600.0``, and
    clients that write every number as a float, JavaScript's among them, send that); None
    if the body is still invalid, whose first error then stands. Only after a strict
    decode has failed: a valid body is decoded once."""

    def ints(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {key: ints(item) for key, item in value.items()}
        if isinstance(value, list):
            return [ints(item) for item in value]
        return value

    try:
        return msgspec.convert(ints(msgspec.json.decode(raw)), body_type)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
