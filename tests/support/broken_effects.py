"""Deliberately broken effects, packaged as a third party's plugin module would be (it
imports only fxhost_sdk): a test's ``plugins.toml`` names it in ``[plugins] modules``
with this folder in ``paths``. Each breaks the effect contract in one way, from the
first block on, so that the host's containment of plugin faults can be tested.

The hanging ones say when they start to hang, if the environment names a folder for it
(``FXHOST_TEST_HANG_MARKS``): one new file each time, so that a test can wait until a
hang is under way instead of guessing how long that takes."""

from __future__ import annotations

import os
import time
from typing import Annotated

import fxhost_sdk
import numpy as np


def _hanging(name: str) -> None:
    folder = os.environ.get("FXHOST_TEST_HANG_MARKS")
    if folder:
        open(os.path.join(folder, f"{name}-{os.getpid()}-{time.monotonic_ns()}"), "x").close()


class _Broken(fxhost_sdk.Effect):
    version = "0.0.1"

    class Params(fxhost_sdk.Params):
        pass


class Raises(_Broken):
    name = "broken_raise"
    summary = "Raises in process()."

    def process(self, block: np.ndarray) -> np.ndarray:
        raise RuntimeError("the DSP blew up")


class WrongShape(_Broken):
    name = "broken_shape"
    summary = "Returns half the frames it was given."

    def process(self, block: np.ndarray) -> np.ndarray:
        return block[:, : block.shape[1] // 2].copy()


class WrongDtype(_Broken):
    name = "broken_dtype"
    summary = "Returns float64 instead of float32."

    def process(self, block: np.ndarray) -> np.ndarray:
        return block.astype(np.float64)


class Int16(_Broken):
    name = "broken_int16"
    summary = "Returns int16 PCM instead of float32."

    def process(self, block: np.ndarray) -> np.ndarray:
        return (block * 32767).astype(np.int16)


class NotAnArray(_Broken):
    name = "broken_list"
    summary = "Returns a list instead of an array."

    def process(self, block: np.ndarray) -> np.ndarray:
        return block.tolist()  # type: ignore[return-value]


class NaN(_Broken):
    name = "broken_nan"
    summary = "Returns NaN in its output."

    def process(self, block: np.ndarray) -> np.ndarray:
        out = block.copy()
        out[:, ::7] = np.nan
        return out


class Inf(_Broken):
    name = "broken_inf"
    summary = "Returns +Inf in its output."

    def process(self, block: np.ndarray) -> np.ndarray:
        out = block.copy()
        out[-1, -1:] = np.inf
        return out


class Sleeps(_Broken):
    name = "broken_sleep"
    summary = "Never returns: sleeps (in C, the GIL released)."

    def process(self, block: np.ndarray) -> np.ndarray:
        _hanging(self.name)
        while True:
            time.sleep(3600)


class Spins(_Broken):
    name = "broken_spin"
    summary = "Never returns: a pure-Python busy loop (holds the GIL between switches)."

    def process(self, block: np.ndarray) -> np.ndarray:
        _hanging(self.name)
        n = 0
        while True:
            n += 1


class Slow(fxhost_sdk.Effect):
    name = "broken_slow"
    version = "0.0.1"
    summary = "Slower than real time on small blocks: sleeps a fixed time per block, passes audio through."

    class Params(fxhost_sdk.Params):
        seconds: Annotated[float, fxhost_sdk.param(description="Sleep per block.", ge=0, le=1)] = 0.05

    def process(self, block: np.ndarray) -> np.ndarray:
        time.sleep(self.params.seconds)
        return block.copy()


class FailsToStart(_Broken):
    name = "broken_init"
    summary = "Raises in prepare(), when an instance is made."

    def prepare(self) -> None:
        raise MemoryError("could not allocate the delay line")

    def process(self, block: np.ndarray) -> np.ndarray:
        return block


class RefusesNewParams(fxhost_sdk.Effect):
    name = "broken_params"
    version = "0.0.1"
    summary = "Works at its defaults; raises when a parameter is changed live."

    class Params(fxhost_sdk.Params):
        amount: Annotated[
            float, fxhost_sdk.param(description="Anything but 0.5 is refused live.", ge=0, le=1)
        ] = 0.5

    def apply_params(self, params: Params) -> None:
        if params.amount != 0.5:
            raise ValueError("cannot re-tune while running")

    def process(self, block: np.ndarray) -> np.ndarray:
        return block


EFFECTS = [
    Raises,
    WrongShape,
    WrongDtype,
    Int16,
    NotAnArray,
    NaN,
    Inf,
    Sleeps,
    Spins,
    Slow,
    FailsToStart,
    RefusesNewParams,
]


@fxhost_sdk.hookimpl
def fxhost_effects() -> list[type[fxhost_sdk.Effect]]:
    return EFFECTS
