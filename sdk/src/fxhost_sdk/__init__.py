"""fxhost-sdk: everything a plugin author needs to write an fxhost effect.

An effect is a subclass of :class:`Effect` (with a ``Params`` struct if it has
parameters); a plugin is a module with an ``@hookimpl`` function ``fxhost_effects`` that
returns effect classes, published with an entry point in the ``fxhost`` group. The
guide is the SDK's README. :mod:`fxhost_sdk.testing` validates an effect,
:mod:`fxhost_sdk.meters` measures levels; what only a host needs is in
:mod:`fxhost_sdk.host`.
"""

from fxhost_sdk.effect import Effect, LoadedAudio, OfflineEffect
from fxhost_sdk.markers import hookimpl
from fxhost_sdk.params import FieldError, Params, asset, param
from fxhost_sdk.smoothing import LinearSmoother

__all__ = [
    "Effect",
    "FieldError",
    "LinearSmoother",
    "LoadedAudio",
    "OfflineEffect",
    "Params",
    "asset",
    "hookimpl",
    "param",
]
__version__ = "0.1.0"
