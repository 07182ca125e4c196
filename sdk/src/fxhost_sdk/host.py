"""What a host needs from the SDK and a plugin author does not.

A host loads plugins with pluggy (:data:`PROJECT`, :mod:`~fxhost_sdk.hookspecs`),
checks each effect class before listing it (:func:`effect_class_problems`), validates
parameters from the outside world (:func:`convert`, :func:`field_error`), resolves
asset parameters (:func:`asset_fields`) and hands effects a loader for them
(:data:`AssetLoader`), and calls a plugin's hook the one way the validator does too
(:func:`hook_effect_classes`). Plugins import :mod:`fxhost_sdk` only; nothing here is part of
the author's surface.
"""

from fxhost_sdk import hookspecs
from fxhost_sdk.effect import NAME_PATTERN, AssetLoader, effect_class_problems
from fxhost_sdk.markers import PROJECT, hookspec
from fxhost_sdk.params import asset_fields, convert, field_error
from fxhost_sdk.wiring import error_reason, hook_effect_classes

__all__ = [
    "NAME_PATTERN",
    "PROJECT",
    "AssetLoader",
    "asset_fields",
    "convert",
    "effect_class_problems",
    "error_reason",
    "field_error",
    "hook_effect_classes",
    "hookspec",
    "hookspecs",
]
