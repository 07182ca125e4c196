"""pluggy markers for the project name ``fxhost``."""

import pluggy

PROJECT = "fxhost"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
