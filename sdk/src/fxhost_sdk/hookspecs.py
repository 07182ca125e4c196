"""The hooks a plugin may implement. The host adds this module with ``add_hookspecs``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fxhost_sdk.markers import hookspec

if TYPE_CHECKING:
    from fxhost_sdk.effect import Effect


@hookspec
def fxhost_effects() -> list[type[Effect]]:  # type: ignore[empty-body]
    """Return the effect classes this plugin provides."""
