"""fxhost-feedback-delay: a feedback delay, and the template for writing a plugin.

A plugin is this module: an ``@hookimpl`` function ``fxhost_effects`` returning effect
classes, found by the host through the entry point in ``pyproject.toml``::

    [project.entry-points.fxhost]
    feedback-delay = "fxhost_feedback_delay"
"""

import fxhost_sdk

from fxhost_feedback_delay.delay import FeedbackDelay

__all__ = ["FeedbackDelay", "fxhost_effects"]


@fxhost_sdk.hookimpl
def fxhost_effects() -> list[type[fxhost_sdk.Effect]]:
    return [FeedbackDelay]
