"""fxhost-mastering: offline-only effects that need the whole signal first.

``loudness_normalize`` (integrated loudness to a target, ITU-R BS.1770-4 / EBU R128,
under a true-peak ceiling), ``peak_normalize`` (sample peak to a target) and
``trim_silence`` (leading and trailing silence removed). Hosts run them in renders and
refuse them in live streams. Found by the host through the entry point::

    [project.entry-points.fxhost]
    mastering = "fxhost_mastering"
"""

import fxhost_sdk

from fxhost_mastering.normalize import LoudnessNormalize, PeakNormalize
from fxhost_mastering.trim import TrimSilence

__all__ = ["LoudnessNormalize", "PeakNormalize", "TrimSilence", "fxhost_effects"]


@fxhost_sdk.hookimpl
def fxhost_effects() -> list[type[fxhost_sdk.Effect]]:
    return [LoudnessNormalize, PeakNormalize, TrimSilence]
