"""``plugins.toml``: which plugins load, and named effect chains.

::

    [plugins]
    disable = ["feedback-delay"]   # plugin names (entry-point or module names) not to load
    modules = ["my_effects.fx"]    # extra modules loaded as plugins, importable from sys.path
    paths = ["./local_plugins"]    # folders prepended to sys.path (relative to this file)

    [plugins.require]              # plugin (entry-point, module or distribution name)
    fxhost-pedalboard = ">=0.1,<0.2"   # -> a PEP 440 version specifier it must meet

    [chains.vocal]
    description = "..."
    max_latency_ms = 10            # refused if its effects' latency adds up to more
    steps = [
      { effect = "reverb", params = { room_size = 0.3, wet_level = 0.2 } },
    ]

Loading checks the shape of the file (:func:`load_config`); the chains' effects and
parameters are checked against the plugins that loaded by the wiring that loads both
(:func:`fxhost.runtime.load_chains`). Every error is a :class:`ConfigError` whose
message names the file and the failing path::

    plugins.toml: chains.vocal.steps[1].params.room_size: Expected float <= 1.0
    plugins.toml:7:12: invalid TOML: Expected '=' after a key in a key/value pair

With no path given, :func:`load_config` reads ``plugins.toml`` in the working
directory if it exists, and otherwise returns an empty config (no extra modules,
nothing disabled, no chains). A file named explicitly must exist.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec
from fxhost_sdk import FieldError
from fxhost_sdk.host import convert

from fxhost.catalog.chains import ChainStep, MaxLatency, validate_chain_name

DEFAULT_CONFIG_PATH = "plugins.toml"

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(Exception):
    """An unusable config file. ``str(error)`` starts with the file, then the path.

    ``source`` is the file as given, ``path`` the failing field path (``None`` for
    file-level problems), ``line``/``column`` set for TOML syntax errors. When several
    chains are invalid, ``errors`` holds one FieldError each and the message has one
    line per error.
    """

    def __init__(
        self,
        source: str,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        errors: list[FieldError] | None = None,
    ):
        self.source = source
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.errors = errors or []
        if errors:
            text = "\n".join(f"{source}: {error}" for error in errors)
        elif line is not None:
            text = f"{source}:{line}:{column}: {message}"
        elif path:
            text = f"{source}: {path}: {message}"
        else:
            text = f"{source}: {message}"
        super().__init__(text)

    @classmethod
    def from_field_error(cls, source: str, error: FieldError) -> ConfigError:
        return cls(source, error.message, path=error.path)


class PluginsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[plugins]`` table."""

    #: Plugins not to load: entry-point names (``feedback-delay``) or module names.
    disable: list[str] = []
    #: Extra modules loaded as plugins, in this order, after the entry points.
    modules: list[str] = []
    #: Folders prepended to ``sys.path`` before plugins load; absolute once loaded.
    paths: list[str] = []
    #: Versions plugins must have: plugin (entry-point, module or distribution name) ->
    #: PEP 440 specifier (``">=0.1,<0.2"``), checked against the loaded plugins by
    #: :func:`fxhost.runtime.check_requirements`.
    require: dict[str, Any] = {}


class ChainConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[chains.<name>]`` table as read. Its effects and params are checked against
    the loaded plugins by :func:`fxhost.runtime.load_chains`."""

    steps: list[ChainStep]
    description: str = ""
    #: The most latency its effects may add up to (at the default sample rate), or none.
    max_latency_ms: MaxLatency | None = None


class _ConfigFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)
    # Checked one chain at a time: msgspec names a failing dict key only as `[...]`.
    chains: dict[str, Any] = {}


class Config(msgspec.Struct, kw_only=True):
    """A loaded config. ``source`` is the file it came from (``None``: defaults only)."""

    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)
    chains: dict[str, ChainConfig] = {}
    source: str | None = None

    @property
    def display_name(self) -> str:
        """How errors name this config: the file as given, or ``<default config>``."""
        return self.source if self.source is not None else "<default config>"


_KNOWN_FIELDS: list[tuple[re.Pattern[str], type[msgspec.Struct]]] = [
    (re.compile(r"^[^.\[]+$"), _ConfigFile),
    (re.compile(r"^plugins\.[^.\[]+$"), PluginsConfig),
    (re.compile(r"^chains\.[^.\[]+\.[^.\[]+$"), ChainConfig),
    (re.compile(r"^chains\.[^.\[]+\.steps\[\d+\]\.[^.\[]+$"), ChainStep),
]


def _explain_unknown(error: FieldError) -> FieldError:
    """Add the allowed keys to msgspec's bare "unknown field"."""
    if error.message != "unknown field":
        return error
    for pattern, struct in _KNOWN_FIELDS:
        if pattern.match(error.path):
            allowed = ", ".join(field.encode_name for field in msgspec.structs.fields(struct))
            return FieldError(error.path, f"unknown field (allowed: {allowed})")
    return error


def _unroot(error: FieldError) -> FieldError:
    """Drop the ``$.`` root that was passed to convert (an empty root leaves a leading dot)."""
    path = error.path.removeprefix("$").removeprefix(".")
    return FieldError(path, error.message)


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else '"' + name.replace('"', '\\"') + '"'


def parse_config(
    text: str, source: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> Config:
    """Parse and check the text of a ``plugins.toml``. ``source`` names it in errors;
    relative ``plugins.paths`` are resolved against ``base_dir`` (default: the working
    directory)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_POSITION.match(str(error))
        if match:
            raise ConfigError(
                source,
                f"invalid TOML: {match['msg']}",
                line=int(match["line"]),
                column=int(match["col"]),
            ) from None
        raise ConfigError(source, f"invalid TOML: {error}") from None
    return from_data(data, source, base_dir)


def from_data(data: Any, source: str = "<data>", base_dir: str | os.PathLike[str] | None = None) -> Config:
    """Check already-parsed config data (a dict, as from TOML) into a :class:`Config`."""
    try:
        parsed = convert(data, _ConfigFile, "$")
    except FieldError as error:
        raise ConfigError.from_field_error(source, _explain_unknown(_unroot(error))) from None

    plugins = parsed.plugins
    for field in ("disable", "modules"):
        seen: set[str] = set()
        for i, name in enumerate(getattr(plugins, field)):
            path = f"plugins.{field}[{i}]"
            if field == "modules" and not _MODULE_NAME.match(name):
                raise ConfigError(source, f"not a module name: {name!r}", path=path)
            if field == "disable" and (not name or name != name.strip()):
                raise ConfigError(source, f"not a plugin name: {name!r}", path=path)
            if name in seen:
                raise ConfigError(source, f"{name!r} is listed twice", path=path)
            seen.add(name)
    for name, specifier in plugins.require.items():
        path = f"plugins.require.{_key(name)}"
        if not name.strip():
            raise ConfigError(source, "empty plugin name", path=path)
        if not isinstance(specifier, str):
            raise ConfigError(
                source, f'expected a version specifier string, e.g. ">=1.2", got {specifier!r}', path=path
            )
        # Imported here, only when versions are required: every command reads the config.
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(specifier)
        except InvalidSpecifier:
            raise ConfigError(
                source, f'not a PEP 440 version specifier: {specifier!r} (e.g. ">=1.2,<2")', path=path
            ) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    paths = []
    for i, folder in enumerate(plugins.paths):
        if not folder.strip():
            raise ConfigError(source, "empty folder name", path=f"plugins.paths[{i}]")
        paths.append(str((base / Path(folder).expanduser()).resolve()))
    plugins = msgspec.structs.replace(plugins, paths=paths)

    chains: dict[str, ChainConfig] = {}
    for name, chain in parsed.chains.items():
        path = f"chains.{_key(name)}"
        try:
            validate_chain_name(name, path)
            chains[name] = convert(chain, ChainConfig, path)
        except FieldError as error:
            raise ConfigError.from_field_error(source, _explain_unknown(error)) from None
    return Config(plugins=plugins, chains=chains, source=source)


def load_config(path: str | os.PathLike[str] | None = None, *, required: bool | None = None) -> Config:
    """Read a ``plugins.toml``.

    ``path=None`` means ``plugins.toml`` in the working directory. A missing file is a
    :class:`ConfigError` when ``required`` (the default when a path is given) and an
    empty :class:`Config` otherwise (the default for ``path=None``).
    """
    if required is None:
        required = path is not None
    file = Path(DEFAULT_CONFIG_PATH if path is None else path)
    source = os.fspath(file)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(source, "file not found") from None
        return Config()
    except OSError as error:
        raise ConfigError(source, f"cannot read: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(source, f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    return parse_config(text, source, base_dir=file.parent)


def config_hash(config: Config) -> str:
    """A digest of what ``config`` says (not of its file's bytes: comments and layout do
    not count), so that processes running the same config show the same hash."""
    data = msgspec.structs.replace(config, source=None)
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()[:16]
