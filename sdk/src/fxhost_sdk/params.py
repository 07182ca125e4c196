"""Parameter structs and the one conversion that validates them.

An effect's parameters are a :class:`Params` subclass whose fields carry
``msgspec.Meta`` constraints (built with :func:`param`) and defaults. That struct is
the single source of the parameter schema: JSON Schema, validation and docs.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T")


class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base class for an effect's parameters. Subclasses inherit ``frozen`` and the
    refusal of unknown fields; ``kw_only`` is per class in msgspec, so construct them
    with keywords (``Params(room_size=0.3)``)."""


def param(
    *,
    description: str,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    multiple_of: float | None = None,
    unit: str | None = None,
    scale: Literal["linear", "log"] | None = None,
) -> msgspec.Meta:
    """Constraints and documentation of one parameter, for use in ``Annotated[...]``.

    Numbers take bounds: ``ge``/``le`` (inclusive), ``gt``/``lt`` (exclusive, for a
    cutoff that must be above 0 Hz, say) and ``multiple_of`` (a step). ``unit`` ("dB",
    "s", "Hz", ...) and ``scale`` ("linear" or "log", how a slider should move) are
    hints for user interfaces; they appear in the JSON Schema as ``x-unit`` and
    ``x-scale``. A number with bounds is ``linear`` unless told otherwise; a parameter
    without bounds (a choice, ``Annotated[Literal["soft", "hard"], param(...)]``, or a
    ``bool``) has no scale, and giving it one is an error.
    """
    if ge is not None and gt is not None:
        raise TypeError("param(): give ge or gt, not both")
    if le is not None and lt is not None:
        raise TypeError("param(): give le or lt, not both")
    numeric = any(bound is not None for bound in (ge, le, gt, lt, multiple_of))
    if scale is not None and not numeric:
        raise TypeError("param(): scale is a hint for a numeric range; give the range's bounds too")
    hints: dict[str, Any] = {"scale": scale or "linear"} if numeric else {}
    if unit:
        hints["unit"] = unit
    return msgspec.Meta(
        ge=ge,
        le=le,
        gt=gt,
        lt=lt,
        multiple_of=multiple_of,
        description=description,
        extra=hints or None,
        extra_json_schema={f"x-{k}": v for k, v in hints.items()} or None,
    )


def asset(*, description: str) -> msgspec.Meta:
    """A ``str`` parameter that names audio: an uploaded asset's id over the API, a file
    path for ``fxhost render``. The host resolves and validates it (it must exist and be
    audio) and the effect reads it with ``Effect.load_asset(field)``. Use it as
    ``Annotated[str, asset(description=...)] = ""``; it appears in the JSON Schema with
    ``x-asset: true``. The empty string means "no asset": hosts do not look it up, and
    the effect decides what none means (usually: pass the input through). No id or file
    name holds a NUL, which PostgreSQL cannot store in a saved chain: it is refused."""
    return msgspec.Meta(
        max_length=4096,
        pattern=r"^[^\x00]*$",
        description=description,
        extra={"asset": True},
        extra_json_schema={"x-asset": True},
    )


def asset_fields(params_cls: type[Params]) -> list[str]:
    """The names of the asset parameters of a Params struct."""
    info = msgspec.inspect.type_info(params_cls)
    names = []
    for field in getattr(info, "fields", ()):
        if isinstance(field.type, msgspec.inspect.Metadata) and (field.type.extra or {}).get("asset"):
            names.append(field.name)
    return names


class FieldError(ValueError):
    """A value refused by validation, with the path of the failing field.

    ``str(error)`` reads ``chains.vocal.steps[1].params.room_size: Expected float <= 1.0``.
    """

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message

    def __reduce__(self):  # picklable, so it crosses to a host's worker processes intact
        return type(self), (self.path, self.message)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<at>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`$")


def field_error(error: msgspec.ValidationError, path: str = "") -> FieldError:
    """Turn msgspec's message (``... - at `$.a[1]```) into a FieldError rooted at ``path``."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any string
    message, at = match["msg"], match["at"] or ""
    full = (path + at) if path else at.removeprefix(".")
    field = _FIELD.match(message)
    if field:
        full = f"{full}.{field['field']}" if full else field["field"]
        message = "unknown field" if field["what"] == "contains unknown" else "required field missing"
    return FieldError(full, message.replace("`", ""))


def convert(value: Any, target: type[T], path: str = "", *, strict: bool = True) -> T:
    """Validate ``value`` (builtins: dicts, lists, numbers...) into ``target``.

    Raises :class:`FieldError` naming the failing field, prefixed with ``path``.
    ``strict=False`` accepts strings for numbers, as query strings need.
    """
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    try:
        return msgspec.convert(value, target, strict=strict)
    except msgspec.ValidationError as error:
        raise field_error(error, path) from None
