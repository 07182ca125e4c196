"""Effect chains: ordered ``(effect, params)`` steps, and their validation.

A chain comes from ``plugins.toml``, from the API (saved), or inline with a request;
all three go through :func:`validate_chain`, which knows nothing of TOML or HTTP. It
resolves every effect name in the registry and validates every step's parameters
with the effect's own ``Params`` struct, raising :class:`fxhost_sdk.FieldError` with
the failing path, e.g. ``chains.vocal.steps[1].params.room_size: Expected float <= 1.0``.

The result is a list of :class:`ResolvedStep` (effect class + validated Params): what
the engine needs to build effect instances for one sample rate and channel count.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import msgspec
from fxhost_sdk import Effect, FieldError, Params, asset_fields, convert

if TYPE_CHECKING:
    from fxhost.registry import Registry

#: Chain names: lower-case letters, digits, ``-`` and ``_``, starting with a letter or digit.
#: Use ``fullmatch``: with ``match`` the ``$`` lets a trailing newline through.
CHAIN_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: The most steps a chain may have.
MAX_STEPS = 64

ChainSource = Literal["config", "api", "inline"]


class ChainStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One step as written by a user: an effect name, optionally one of its presets,
    and (some of) its parameters.

    Parameters left out take the preset's values, then the effect's defaults."""

    effect: str
    params: dict[str, Any] = {}
    preset: str | None = None


# The rules above as the API documents them. Only documented (extra_json_schema), not
# checked on decoding: validate_chain_name and validate_chain check them, with messages
# that say how to fix the value.
ChainName = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": CHAIN_NAME_PATTERN.pattern})]
ChainSteps = Annotated[
    list[ChainStep], msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_STEPS})
]


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """A named, validated chain. ``steps`` hold every parameter (defaults filled in)."""

    name: str
    steps: list[ChainStep]
    description: str = ""
    source: ChainSource = "config"

    def resolve(
        self, registry: Registry, path: str | None = None, *, assets: AssetChecker | None = None
    ) -> list[ResolvedStep]:
        """The steps resolved against ``registry`` (validated again: a registry may differ
        from the one the chain was built with)."""
        return validate_chain(self.steps, registry, self.name if path is None else path, assets=assets)


@dataclass(frozen=True, slots=True)
class ResolvedStep:
    """A validated step: the effect class and a validated instance of its Params."""

    effect: str
    cls: type[Effect]
    params: Params
    preset: str | None = None

    def to_step(self) -> ChainStep:
        """Back to a serialisable step, with every parameter written out."""
        return ChainStep(effect=self.effect, params=msgspec.to_builtins(self.params), preset=self.preset)


class AssetChecker(Protocol):
    """Validates an asset parameter's value: it must name audio that exists. Raises
    FieldError at ``path``. The host's: an asset id (REST) or a file path (CLI)."""

    def __call__(self, ref: str, path: str) -> None: ...


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_chain_name(name: object, path: str = "name") -> str:
    """Check a chain name; raise FieldError at ``path`` if it is not one."""
    if not isinstance(name, str) or not CHAIN_NAME_PATTERN.fullmatch(name):
        raise FieldError(
            path,
            f"invalid chain name {name!r}: use 1 to 64 lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit",
        )
    return name


def validate_chain(
    steps_raw: Any,
    registry: Registry,
    path: str = "",
    *,
    live: bool = False,
    assets: AssetChecker | None = None,
) -> list[ResolvedStep]:
    """Validate the steps of a chain against ``registry``.

    ``steps_raw`` is a list of ``{"effect": ..., "params": {...}}`` mappings (decoded
    JSON or TOML) or of :class:`ChainStep`. ``path`` is where the chain sits in the
    document (``"chains.vocal"``; ``""`` for a bare chain): errors are raised as
    FieldError at ``{path}.steps``, ``{path}.steps[i].effect`` or
    ``{path}.steps[i].params.<field>``. Checks the first failing thing only.
    ``live``: the chain will run in a stream, which refuses offline-only effects.
    ``assets``: checks every asset parameter (without it they are not checked here:
    the effect's loader reports a missing asset when the chain is built).
    """
    steps_path = _join(path, "steps")
    if isinstance(steps_raw, Sequence) and not isinstance(steps_raw, str | bytes):
        steps_raw = [msgspec.to_builtins(step) if isinstance(step, ChainStep) else step for step in steps_raw]
    steps = convert(steps_raw, list[ChainStep], steps_path)
    if not steps:
        raise FieldError(steps_path, "a chain needs at least one step")
    if len(steps) > MAX_STEPS:
        raise FieldError(steps_path, f"a chain has at most {MAX_STEPS} steps, got {len(steps)}")
    resolved = []
    for i, step in enumerate(steps):
        step_path = f"{steps_path}[{i}]"
        info = registry.effects.get(step.effect)
        if info is None:
            raise FieldError(f"{step_path}.effect", _unknown_effect(step.effect, registry))
        if live and info.cls.offline_only:
            raise FieldError(
                f"{step_path}.effect",
                f"{step.effect!r} is offline-only: it needs the whole signal, so it cannot run live; "
                "use it in a render",
            )
        params_path = f"{step_path}.params"
        try:
            if step.preset is not None:
                params = info.cls.preset(step.preset, step.params, path=params_path)
            else:
                params = info.cls.check_params(step.params, path=params_path)
        except FieldError as error:
            if error.path == "preset":
                raise FieldError(f"{step_path}.preset", error.message) from None
            raise _explain_params(error, params_path, step.effect, info.cls) from None
        if assets is not None:
            for field in asset_fields(info.cls.Params):
                if ref := getattr(params, field):  # "" is "no asset"
                    assets(ref, f"{params_path}.{field}")
        resolved.append(ResolvedStep(effect=step.effect, cls=info.cls, params=params, preset=step.preset))
    return resolved


def build_chain(
    name: str,
    steps_raw: Any,
    registry: Registry,
    *,
    description: str = "",
    source: ChainSource = "config",
    path: str = "",
) -> Chain:
    """Validate a name and its steps into a :class:`Chain` with every parameter filled in
    (what the API does with a chain it saves). FieldErrors are rooted at ``path``:
    ``{path}.name``, ``{path}.steps[i]...``."""
    validate_chain_name(name, _join(path, "name"))
    steps = validate_chain(steps_raw, registry, path)
    return Chain(
        name=name,
        steps=[step.to_step() for step in steps],
        description=description,
        source=source,
    )


def _unknown_effect(name: str, registry: Registry) -> str:
    available = sorted(registry.effects)
    if not available:
        return f"unknown effect {name!r}: no effects are loaded (see `fxhost plugins`)"
    message = f"unknown effect {name!r}"
    close = difflib.get_close_matches(name, available, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; available: {', '.join(available)}"


def _explain_params(error: FieldError, params_path: str, effect: str, cls: type[Effect]) -> FieldError:
    """Name the effect's parameters when an unknown one was given."""
    if error.message != "unknown field" or error.path.rpartition(".")[0] != params_path:
        return error
    names = ", ".join(field.encode_name for field in msgspec.structs.fields(cls.Params))
    return FieldError(error.path, f"unknown parameter of {effect!r} (it has: {names or 'none'})")
