"""Settings from environment variables ``FXHOST_*`` and a ``.env`` file.

Every setting has a working default, so ``fxhost serve`` runs with no configuration.
The environment wins over ``.env``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from dotenv import dotenv_values
from fxhost_sdk import FieldError, convert

PREFIX = "FXHOST_"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    plugins_config: str = "plugins.toml"
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    max_tail_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0

    @property
    def plugins_config_path(self) -> Path:
        return Path(self.plugins_config)


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def load_settings(env: dict[str, str] | None = None, dotenv_path: str | os.PathLike = ".env") -> Settings:
    """Read settings; raises ``fxhost_sdk.FieldError`` naming the variable at fault."""
    source = {**dotenv_values(dotenv_path), **(os.environ if env is None else env)}
    fields = {
        f: source[env_name(f)] for f in Settings.__struct_fields__ if source.get(env_name(f)) is not None
    }
    try:
        # Environment values are strings: strict=False lets msgspec parse numbers.
        return convert(fields, Settings, strict=False)
    except FieldError as error:
        raise FieldError(env_name(error.path), error.message) from None
