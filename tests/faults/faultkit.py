"""What the fault tests share: the broken effects and what each must be reported as, and
the expected output of a healthy chain, computed here with the engine itself."""

from __future__ import annotations

import numpy as np
from fxhost.engine.compiled import CompiledChain
from fxhost.engine.offline import render_blocks
from fxhost_feedback_delay import FeedbackDelay
from restkit import REPO, Server

#: Render and /api/process time limit, and the live block deadline, in seconds.
RENDER_LIMIT = 2
BLOCK_LIMIT = 1
#: The render time limit of ``patient_server``: never reached by a test.
PATIENT_LIMIT = 3600
#: The environment variable naming the folder where hung effects mark that they hang.
HANG_MARKS = "FXHOST_TEST_HANG_MARKS"
#: The broken effects, loaded as an operator loads a third party's module.
PLUGINS_TOML = f"""
[plugins]
paths = ["{REPO / "tests" / "support"}"]
modules = ["broken_effects"]
"""

#: Broken effect -> words its fault report must contain (besides the step and the name).
FAULTS = {
    "broken_raise": "raised RuntimeError: the DSP blew up",
    "broken_shape": "returned shape (2, ",
    "broken_dtype": "returned float64 samples, not float32",
    "broken_int16": "returned int16 samples, not float32",
    "broken_list": "returned list, not a numpy array",
    "broken_nan": "returned NaN/Inf",
    "broken_inf": "returned NaN/Inf",
    "broken_init": "failed to start: raised MemoryError",
}
HANGS = ["broken_sleep", "broken_spin"]
#: The bystander's chain: a healthy effect whose output is checked sample by sample.
DELAY = {"effect": "feedback_delay", "params": {"delay_seconds": 0.01, "feedback": 0.5, "mix": 0.5}}


def hangs(server: Server, effect: str) -> int:
    """How many times ``effect`` has started to hang on ``server`` (see broken_effects)."""
    return sum(1 for _ in (server.root / "hangs").glob(f"{effect}-*"))


class _Step:
    def __init__(self, params: dict):
        self.cls = FeedbackDelay
        self.params = FeedbackDelay.check_params(params)


def delayed(audio: np.ndarray, sample_rate: int, *, tail: bool) -> np.ndarray:
    """What DELAY makes of ``audio`` (with its tail, as a render appends it)."""
    chain = CompiledChain([_Step(DELAY["params"])], sample_rate, audio.shape[0])
    tail_frames = chain.tail_frames(30.0) if tail else 0
    return np.concatenate(list(render_blocks(chain, [audio], tail_frames=tail_frames)), axis=1)


def delay_chain(sample_rate: int, channels: int) -> CompiledChain:
    """DELAY, to feed block by block as a live session does."""
    return CompiledChain([_Step(DELAY["params"])], sample_rate, channels)
