"""fxhost_sdk.LinearSmoother: ramps instead of jumps, the same for any block sizes."""

from __future__ import annotations

import numpy as np
import pytest
from fxhost_sdk import LinearSmoother


def run(smoother: LinearSmoother, blocks: list[int]) -> np.ndarray:
    return np.concatenate([smoother.next(n) for n in blocks])


def test_the_first_target_is_taken_at_once():
    smoother = LinearSmoother(1000, seconds=0.01)
    smoother.set_target(0.5)
    assert not smoother.ramping
    assert np.array_equal(smoother.next(3), [0.5, 0.5, 0.5])


def test_a_change_ramps_linearly_and_lands_on_the_target():
    smoother = LinearSmoother(1000, seconds=0.004)  # 4 frames
    smoother.set_target(0.0)
    smoother.set_target(1.0)
    assert smoother.ramping
    assert np.allclose(smoother.next(6), [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert smoother.value == 1.0 and not smoother.ramping


def test_a_change_during_a_ramp_starts_from_where_the_value_is():
    smoother = LinearSmoother(1000, seconds=0.004)
    smoother.set_target(0.0)
    smoother.set_target(1.0)
    smoother.next(2)
    assert smoother.value == 0.5
    smoother.set_target(0.0)
    assert np.allclose(smoother.next(4), [0.375, 0.25, 0.125, 0.0])


@pytest.mark.parametrize("blocks", [[480], [1] * 480, [7] * 68 + [4], [64, 1, 255, 160]])
def test_the_values_are_the_same_whatever_the_block_sizes(blocks):
    def automate(block_sizes):
        smoother = LinearSmoother(48000, seconds=0.005)
        smoother.set_target(1.0)
        out = []
        for i, n in enumerate(block_sizes):
            if i == 1:
                smoother.set_target(0.2)
            out.append(smoother.next(n))
        return np.concatenate(out)

    # the change comes after the first block: compare against the same schedule in one go
    first = blocks[0]
    reference = LinearSmoother(48000, seconds=0.005)
    reference.set_target(1.0)
    head = reference.next(first)
    reference.set_target(0.2)
    expected = np.concatenate([head, reference.next(480 - first)])
    assert np.allclose(automate(blocks), expected, atol=1e-12)


def test_no_step_is_larger_than_the_change_over_the_ramp():
    smoother = LinearSmoother(48000, seconds=0.02)
    smoother.set_target(0.0)
    smoother.set_target(1.0)
    values = np.concatenate([[0.0], run(smoother, [100, 1000])])
    assert np.abs(np.diff(values)).max() <= 1.0 / smoother.ramp_frames + 1e-12


def test_jump_skips_the_ramp():
    smoother = LinearSmoother(48000)
    smoother.set_target(1.0)
    smoother.set_target(0.0)
    smoother.jump(0.7)
    assert not smoother.ramping and np.array_equal(smoother.next(2), [0.7, 0.7])


def test_misuse_is_refused():
    with pytest.raises(RuntimeError, match="set_target"):
        LinearSmoother(48000).next(4)
    with pytest.raises(ValueError, match="sample_rate"):
        LinearSmoother(0)
    with pytest.raises(ValueError, match="seconds"):
        LinearSmoother(48000, seconds=-1)
