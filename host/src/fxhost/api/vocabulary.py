"""What only the running server knows, for the OpenAPI document it serves: the effects it
loaded and the chains ``plugins.toml`` names, as the components that the route
declarations mark with :func:`~fxhost.api.openapi.declare.component`, and the shapes of
its ids.

The document describes the server that serves it, so that a generated client or a
fuzzer that reads nothing else can create things:

- **Effects** are fixed once the server has started: ``EffectName`` is an ``enum`` of
  the installed effects, and a chain step in a request (``StepInput``) is ``oneOf`` one
  step schema per effect (``Step.<effect>``), which names the effect (``const``), its
  parameters (``Params.<effect>``, the effect's own schema, as ``GET /api/effects``
  gives it) and its presets (``enum``). A stream's steps (``LiveStepInput``) leave out
  the offline-only effects, and a step's new parameters (``StepParams``) are some of
  those of a live effect. Responses keep the plain ``ChainStep``: a chain saved before
  a plugin was removed still lists its steps.
- **Chains** of ``plugins.toml`` are fixed too, but chains saved through
  ``/api/chains`` come and go with any request, and each tenant has its own: no
  document served to everyone can list them. A chain named in a request (``ChainRef``)
  is therefore ``anyOf``: an ``enum`` of the configured chains, or any name a chain can
  be saved under (the pattern). A well-formed name that names no chain of the caller's
  is refused as before: 422 naming ``chain``.
- **Ids** are documented by their pattern: an id of another shape names nothing (404).
- **Output formats and sample types** of a query (transcoding, ``/api/process``) are
  documented as the names the server knows, in any case, as it reads them; which sample
  types and rates a format can hold depends on the format and the audio (422).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import msgspec

from fxhost.api.openapi.declare import component
from fxhost.audio.formats import OUTPUT_FORMATS, RenderOutput
from fxhost.catalog.chains import CHAIN_NAME_PATTERN, MAX_STEPS, ChainName, ChainStep
from fxhost.catalog.registry import EffectInfo
from fxhost.runtime import Runtime
from fxhost.store.db.models import ID_PATTERN

#: An installed effect's name.
EffectName = component(str, "EffectName")
#: A chain by name: one of plugins.toml's, or one saved through the API.
ChainRef = component(ChainName, "ChainRef")
#: The same, for a chain that runs live (a stream): no offline-only effects.
LiveChainRef = component(ChainName, "LiveChainRef")
_BOUNDS = msgspec.Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_STEPS})
#: The steps of a chain in a request: each of an installed effect.
InputChainSteps = Annotated[list[component(ChainStep, "StepInput")], _BOUNDS]
#: The steps of a chain that runs live: no offline-only effects.
LiveChainSteps = Annotated[list[component(ChainStep, "LiveStepInput")], _BOUNDS]
#: Asset and render ids (made by the store).
AssetId = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": ID_PATTERN.pattern})]
RenderId = AssetId
#: Stream ids (``secrets.token_hex(12)`` in :mod:`fxhost.engine.streams`).
StreamId = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": "^[0-9a-f]{24}$"})]

_REF = "#/components/schemas/{name}"


def _any_case(names: list[str]) -> str:
    """A pattern matching any of ``names`` in any case (JSON Schema patterns have no flags)."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in n) for n in names)
    return f"^(?:{'|'.join(spelled)})$"


#: An output format's name (``?format=``), in any case.
#: "" is the default (as stored, or the input's).
OutputFormatName = Annotated[
    str, msgspec.Meta(extra_json_schema={"pattern": _any_case(["", *OUTPUT_FORMATS])})
]
#: A sample type (``?subtype=``), in any case.
_SUBTYPE_PATTERN = _any_case(sorted({s for f in OUTPUT_FORMATS.values() for s in f.subtypes}))
SubtypeName = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": _SUBTYPE_PATTERN})]


def served_schemas(runtime: Runtime) -> dict[str, Any]:
    """The components of the document that ``runtime`` (its registry and plugins.toml)
    decides: see the module's docstring. Built once, when the app is made."""
    effects = sorted(runtime.registry, key=lambda info: info.name)
    schemas: dict[str, Any] = {}
    if effects:
        schemas["EffectName"] = {
            "type": "string",
            "enum": [info.name for info in effects],
            "description": "An installed effect (`GET /api/effects`).",
        }
    for info in effects:
        schemas[f"Params.{info.name}"] = _params_schema(info)
        schemas[f"Step.{info.name}"] = _step_schema(info)
    live = [info for info in effects if not info.cls.offline_only]
    about = "One step: an installed effect, optionally one of its presets, some of its parameters."
    schemas["StepInput"] = _one_of([info.name for info in effects], about)
    schemas["LiveStepInput"] = _one_of(
        [info.name for info in live], about + " Offline-only effects cannot run live."
    )
    schemas["StepParams"] = {
        "description": "Some of the parameters of the step's effect (a live effect's).",
        "anyOf": [{"$ref": _REF.format(name=f"Params.{info.name}")} for info in live] or [{"type": "object"}],
    }
    classes = runtime.registry.classes
    configured = sorted(runtime.chains)
    runs_live = [
        name
        for name in configured
        if all(not classes[step.effect].offline_only for step in runtime.chains[name].steps)
    ]
    schemas["ChainRef"] = _chain_ref(configured)
    schemas["LiveChainRef"] = _chain_ref(runs_live)
    schemas["RenderOutput"] = _render_output()
    schemas["LinkExpiresIn"] = {
        "type": "integer",
        "minimum": 1,
        "maximum": runtime.settings.link_max_seconds,
        "description": "Seconds the link works for (default 3600, or the maximum if lower): at most "
        "this server's link_max_seconds setting.",
    }
    return schemas


def _render_output() -> dict[str, Any]:
    """RenderOutput's schema with its format and sample type named as the server reads
    them (any case): the type says ``str``, the audio layer knows no documents."""
    schema = msgspec.json.schema_components([RenderOutput], ref_template=_REF)[1]["RenderOutput"]
    schema["description"] = inspect.cleandoc(schema.get("description", ""))
    properties = schema["properties"]
    properties["format"] = {**properties["format"], "pattern": _any_case(list(OUTPUT_FORMATS))}
    properties["subtype"] = {
        **properties["subtype"],
        "anyOf": [{"type": "string", "pattern": _SUBTYPE_PATTERN}, {"type": "null"}],
    }
    return schema


def _params_schema(info: EffectInfo) -> dict[str, Any]:
    """The effect's parameter schema (an asset parameter names an asset that must exist
    when the chain runs, not when it is saved: the schema says "a string")."""
    return {**info.params_schema, "title": f"{info.name} parameters"}


def _step_schema(info: EffectInfo) -> dict[str, Any]:
    presets = list(info.cls.presets)
    preset: dict[str, Any] = {"enum": [*presets, None]} if presets else {"type": "null"}
    preset["description"] = "A preset of the effect; the parameters given override it."
    return {
        "title": f"{info.name} step",
        "description": info.summary,
        "type": "object",
        "properties": {
            "effect": {"const": info.name},
            "params": {"$ref": _REF.format(name=f"Params.{info.name}")},
            "preset": preset,
        },
        "required": ["effect"],
        "additionalProperties": False,
    }


def _one_of(names: list[str], description: str) -> dict[str, Any]:
    if not names:  # no effect can run here: no step is valid
        return {"description": description, "not": {}}
    return {"description": description, "oneOf": [{"$ref": _REF.format(name=f"Step.{n}")} for n in names]}


def _chain_ref(configured: list[str]) -> dict[str, Any]:
    saved = {
        "type": "string",
        "pattern": CHAIN_NAME_PATTERN.pattern,
        "description": "A chain saved through /api/chains (by the caller): refused (422) if there is none.",
    }
    if not configured:
        return saved
    return {"anyOf": [{"enum": configured, "description": "A chain of plugins.toml."}, saved]}
