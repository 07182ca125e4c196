"""How a plugin's hook is called and what it must return: one place for the host's
registry and the validator's :func:`fxhost_sdk.testing.check_plugin`, so that a plugin
the validator passes is a plugin the host loads."""

from __future__ import annotations

import pluggy


def error_reason(stage: str, error: BaseException) -> str:
    """``"<stage>: <ExceptionType>: <message>"`` on one line (never a traceback)."""
    message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{stage}: {type(error).__name__}: {message}" if message else f"{stage}: {type(error).__name__}"


def hook_effect_classes(pm: pluggy.PluginManager, plugin: object, name: str) -> tuple[list[type], str | None]:
    """Call plugin ``name``'s own ``fxhost_effects`` (it is registered in ``pm`` under
    that name): ``(classes, None)``, or ``([], reason)`` for an unknown hook, no hook, a
    hook that raises or returns anything but a list (or tuple) of classes."""
    unknown = sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(impl.plugin_name == name and not impl.optionalhook for impl in caller.get_hookimpls())
    )
    if unknown:
        return [], (
            f"invalid plugin: unknown hook {', '.join(map(repr, unknown))} (fxhost hooks: 'fxhost_effects')"
        )
    impls = [impl for impl in pm.hook.fxhost_effects.get_hookimpls() if impl.plugin_name == name]
    if not impls:
        return [], ("invalid plugin: no fxhost_effects hook (is it decorated with fxhost_sdk.hookimpl?)")
    classes: list[type] = []
    for impl in impls:
        try:
            result = impl.function()
        except (Exception, SystemExit) as error:
            return [], error_reason("fxhost_effects raised", error)
        if not isinstance(result, list | tuple):
            return [], (f"fxhost_effects returned {type(result).__name__}, expected a list of effect classes")
        for item in result:
            if not isinstance(item, type):
                return [], (
                    f"fxhost_effects returned a list containing {item!r} "
                    f"({type(item).__name__}), expected effect classes"
                )
            classes.append(item)
    return classes, None
