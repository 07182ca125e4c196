"""``fxhost new-plugin NAME``: a plugin distribution in a new folder, ready to test.

The files come from ``template/`` (``*.tmpl``, filled with :class:`string.Template`, so
the Python and TOML in them need no escaping). ``fxhost-sdk`` is not on the package
index yet, so the plugin's ``pyproject.toml`` points uv at it with a path source: the
SDK folder of the fxhost checkout the command runs from, or what ``--sdk`` names (an
SDK folder or a built wheel). The folder appears whole or not at all: it is written
under a hidden name beside the target and renamed into place.
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from string import Template

import fxhost_sdk
from fxhost_sdk import FieldError

TEMPLATE = Path(__file__).parent / "template"
#: A distribution name that is also, with ``-`` as ``_``, a Python package and an effect
#: name (``fxhost_sdk.host.NAME_PATTERN``): lower case, digits, single ``-`` or ``_``.
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
MAX_NAME = 64


@dataclass(frozen=True)
class PluginNames:
    dist: str  # acme-echo: the distribution and its entry point
    package: str  # acme_echo: the import package, and the effect's name
    class_name: str  # AcmeEcho


def plugin_names(name: str) -> PluginNames:
    """The names a plugin called ``name`` gets; FieldError at ``NAME`` if it cannot be one."""
    if not PLUGIN_NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise FieldError(
            "NAME",
            f"{name!r} is not a plugin name: use lower-case letters, digits and single '-' or '_' "
            f"between them, starting with a letter, at most {MAX_NAME} characters (e.g. acme-echo)",
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package):
        raise FieldError("NAME", f"{name!r} is a Python keyword; a plugin's package needs another name")
    if importlib.util.find_spec(package) is not None:
        raise FieldError(
            "NAME",
            f"a module named {package!r} is already installed here; the plugin would shadow it "
            "(or be shadowed): choose another name",
        )
    class_name = "".join(part.capitalize() for part in package.split("_"))
    return PluginNames(dist=package.replace("_", "-"), package=package, class_name=class_name)


def checkout_sdk() -> Path | None:
    """The ``sdk/`` folder of the fxhost checkout this host runs from, if it does (the SDK
    installed from its source: ``<checkout>/sdk/src/fxhost_sdk``)."""
    folder = Path(fxhost_sdk.__file__).resolve().parents[2]
    return folder if _is_sdk_folder(folder) else None


def _is_sdk_folder(folder: Path) -> bool:
    try:
        with (folder / "pyproject.toml").open("rb") as file:
            return tomllib.load(file).get("project", {}).get("name") == "fxhost-sdk"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def sdk_source(sdk: str | os.PathLike | None) -> Path:
    """Where the plugin gets fxhost-sdk: ``sdk`` (an SDK folder or a built wheel), or this
    checkout's SDK. FieldError at ``--sdk`` if neither is there."""
    if sdk is None:
        found = checkout_sdk()
        if found is None:
            raise FieldError(
                "--sdk",
                "this fxhost is not run from a checkout, so the SDK's source is not at hand; give "
                "--sdk PATH: the sdk folder of an fxhost checkout, or a wheel built there "
                "(`uv build --wheel` in sdk/)",
            )
        return found
    path = Path(sdk).expanduser().resolve()
    if path.is_dir() and _is_sdk_folder(path):
        return path
    if path.is_file() and path.name.startswith("fxhost_sdk-") and path.suffix == ".whl":
        return path
    raise FieldError(
        "--sdk",
        f"{sdk}: expected the sdk folder of an fxhost checkout (its pyproject.toml names "
        "fxhost-sdk) or a built wheel fxhost_sdk-*.whl",
    )


def new_plugin(name: str, parent: str | os.PathLike = ".", sdk: str | os.PathLike | None = None) -> Path:
    """Write the plugin ``name`` into the new folder ``parent/name`` and return it.

    FieldError (``NAME``, ``--sdk``) for a bad name, an existing folder or no SDK to point
    at; nothing is left behind then, nor if writing fails half-way.
    """
    names = plugin_names(name)
    source = sdk_source(sdk)
    parent_path = Path(parent).resolve()
    if not parent_path.is_dir():
        raise FieldError("--dir", f"{parent_path} is not a folder")
    target = parent_path / name
    if target.exists() or target.is_symlink():
        raise FieldError("NAME", f"{target} already exists; choose another name or folder")
    origin = "a built wheel of it" if source.is_file() else "its source folder in an fxhost checkout"
    values = {
        "dist": names.dist,
        "package": names.package,
        "class_name": names.class_name,
        "effect_name": names.package,
        "summary": "A tremolo: the level rises and falls with a sine LFO.",
        "sdk_path": source.as_posix(),
        # editable, as the checkout's own workspace has it: uv then sees one fxhost-sdk
        # when the plugin joins the host's project (a plain path would be a second URL)
        "sdk_editable": "" if source.is_file() else ", editable = true",
        "sdk_origin": f"{origin} (`fxhost new-plugin --sdk` chooses another).",
        "sdk_origin_short": f"{origin}, `{source.as_posix()}`",
        "plugin_path": target.as_posix(),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent_path))
    try:
        for template in sorted(TEMPLATE.rglob("*.tmpl")):
            relative = template.relative_to(TEMPLATE).with_suffix("").as_posix()
            relative = relative.replace("src/package/", f"src/{names.package}/")
            relative = relative.replace("test_package.py", f"test_{names.package}.py")
            relative = relative.replace("gitignore", ".gitignore")
            out = staging / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(template.read_text()).substitute(values))
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
