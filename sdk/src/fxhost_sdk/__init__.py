"""fxhost-sdk: everything a plugin author needs to write an fxhost effect.

An effect is a subclass of :class:`Effect` with a ``Params`` struct; a plugin is a
module with an ``@hookimpl`` function ``fxhost_effects`` that returns effect classes,
published with an entry point in the ``fxhost`` group. See the README's plugin guide.
"""

from fxhost_sdk.effect import AssetLoader, Effect, LoadedAudio, OfflineEffect, effect_class_problems
from fxhost_sdk.markers import hookimpl, hookspec
from fxhost_sdk.params import FieldError, Params, asset, asset_fields, convert, param

__all__ = [
    "AssetLoader",
    "Effect",
    "FieldError",
    "LoadedAudio",
    "OfflineEffect",
    "Params",
    "asset",
    "asset_fields",
    "convert",
    "effect_class_problems",
    "hookimpl",
    "hookspec",
    "param",
]
__version__ = "0.1.0"
