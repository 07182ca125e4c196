"""Offline rendering (the counterpart of :mod:`fxhost.engine.live`): a file through a
chain, streamed block by block, with the chain's latency compensated and its tail
appended, so that memory does not grow with the length of the input. The one render
function of fxhost: ``fxhost render``, renders and ``/api/process`` all call
:func:`render_file`."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fxhost_sdk.host import AssetLoader

from fxhost.audio.files import AudioInfo, open_input, open_output
from fxhost.audio.formats import RenderOutput, choose_output, format_of_path
from fxhost.audio.resample import Resampler
from fxhost.engine.ceiling import CeilingLimiter
from fxhost.engine.compiled import RENDER_BLOCK, CompiledChain, Step

#: A sample at or beyond this magnitude is over full scale: clipped when written as
#: integers (PCM, FLAC, ALAC...), and by any later conversion to them when written as float.
FULL_SCALE = 1.0


class OutputLevels:
    """The levels of a render's output, measured block by block on exactly the float
    samples handed to the file (after resampling and any ceiling, before encoding): the
    **sample peak** (largest ``|x|``, in dBFS: 0 dBFS is full scale) and the **clipped
    samples**, those with ``|x| >= FULL_SCALE``, counted in every channel (a stereo frame
    over full scale in both channels counts 2). For an integer output those are the
    samples the encoder clips to full scale; a float output keeps them, over full scale,
    and anything that later converts it to integers clips them."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.clipped = 0

    def add(self, block: np.ndarray) -> None:
        if block.size:
            magnitude = np.abs(block)
            self.peak = max(self.peak, float(magnitude.max()))
            self.clipped += int(np.count_nonzero(magnitude >= FULL_SCALE))

    @property
    def peak_dbfs(self) -> float | None:
        """The sample peak in dBFS, rounded to 0.01 dB; None for digital silence."""
        return round(20.0 * math.log10(self.peak), 2) if self.peak > 0.0 else None


@dataclass(frozen=True)
class RenderResult:
    input: AudioInfo
    #: Frames rendered, at the input's rate (before any resampling).
    output_frames: int
    tail_frames: int
    format: str
    subtype: str
    sample_rate: int
    #: The output's sample peak in dBFS (None for digital silence); see :class:`OutputLevels`.
    peak_dbfs: float | None = None
    #: Samples at or over full scale in the output; see :class:`OutputLevels`.
    clipped_samples: int = 0


def render_file(
    source: str | os.PathLike,
    target: str | os.PathLike,
    steps: Sequence[Step],
    *,
    output: RenderOutput | None = None,
    display_name: str | None = None,
    tail: bool = True,
    max_tail_seconds: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
    assets: AssetLoader | None = None,
    block_frames: int = RENDER_BLOCK,
    atomic: bool = True,
) -> RenderResult:
    """Render ``source`` through ``steps`` into ``target``. Blocking.

    The output follows the output rule of :mod:`fxhost.audio.formats`: ``output`` asks
    for a format, sample rate and subtype (``None``: the format ``target``'s extension
    names); the channel count is the input's. The chain's latency is compensated and its
    tail appended (``tail=False`` cuts the output at the input's length). With
    ``output.ceiling_dbfs`` a :class:`~fxhost.engine.ceiling.CeilingLimiter` is the last
    step, after resampling. The output's peak and clipped samples are measured on the
    way to the file (:class:`OutputLevels`) and returned with the rest.
    ``progress(done_frames, total_frames)`` is called after every block.

    With ``atomic`` the output appears only when complete: it is written to a temporary
    file beside ``target`` and renamed, so a failed render leaves nothing behind. A
    caller whose ``target`` is a temporary file of its own passes ``atomic=False``.
    """
    target = Path(target)
    with open_input(source, display_name=display_name) as reader:
        info = reader.info
        wanted = output if output is not None else RenderOutput(format=format_of_path(target))
        spec, subtype, rate = choose_output(wanted, info.sample_rate, info.channels, info.subtype)
        chain = CompiledChain(steps, info.sample_rate, info.channels, assets=assets)
        tail_frames = chain.tail_frames(max_tail_seconds) if tail else 0
        total = info.frames + tail_frames
        resampler = Resampler(info.channels, info.sample_rate, rate) if rate != info.sample_rate else None
        ceiling = wanted.ceiling_dbfs
        limiter = CeilingLimiter(ceiling, rate, info.channels) if ceiling is not None else None
        levels = OutputLevels()
        done = 0
        with (
            _writing(target, atomic) as path,
            open_output(path, rate, info.channels, spec.name, subtype) as sink,
        ):

            def write(out: np.ndarray) -> None:
                if limiter is not None:
                    out = limiter.process(out)
                levels.add(out)
                sink.write(out)

            blocks = render_blocks(
                chain, reader.blocks(block_frames), tail_frames=tail_frames, block_frames=block_frames
            )
            for block in blocks:
                write(resampler.process(block) if resampler else block)
                done += block.shape[1]
                if progress:
                    progress(done, total)
            if resampler:
                write(resampler.flush())
            if limiter is not None:
                last = limiter.flush()
                levels.add(last)
                sink.write(last)
    return RenderResult(info, done, tail_frames, spec.name, subtype, rate, levels.peak_dbfs, levels.clipped)


@contextlib.contextmanager
def _writing(target: Path, atomic: bool) -> Iterator[Path]:
    """The path to write ``target`` at: itself, or (``atomic``) a temporary file beside
    it that replaces it once the block has finished, and goes if the block fails."""
    if not atomic:
        yield target
        return
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(name)
        # The writer does not fsync (audio.files.AudioWriter): do it before the rename,
        # so that after a crash ``target`` is the whole output or what was there before.
        with open(name, "rb") as written:
            os.fsync(written.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def render_blocks(
    chain: CompiledChain,
    blocks: Iterable[np.ndarray],
    *,
    tail_frames: int,
    block_frames: int = RENDER_BLOCK,
) -> Iterator[np.ndarray]:
    """Stream ``blocks`` (float32 ``(channels, frames)``) through ``chain``.

    Yields processed blocks aligned with the input (the chain's latency removed),
    followed by ``tail_frames`` of tail: the output is exactly ``input frames +
    tail_frames`` long, unless an offline-only step changes the length (trimming).
    """
    if chain.offline:
        # Offline-only steps need everything first: gather, process, then hand it out.
        audio = np.concatenate([*blocks, np.zeros((chain.channels, tail_frames), np.float32)], axis=1)
        whole = chain.process_whole(audio, block_frames)
        for start in range(0, whole.shape[1], block_frames):
            yield whole[:, start : start + block_frames]
        return
    skip = chain.latency  # output frames that precede the first real one
    for block in blocks:
        out = chain.process(block)
        if skip:
            dropped = min(skip, out.shape[1])
            out, skip = out[:, dropped:], skip - dropped
        if out.shape[1]:
            yield out
    remaining = tail_frames + chain.latency
    # What is still owed is the latency (already skipped at the front) plus the tail.
    silence = np.zeros((chain.channels, block_frames), dtype=np.float32)
    while remaining > 0:
        n = min(block_frames, remaining)
        out = chain.process(silence[:, :n])
        remaining -= n
        if skip:
            dropped = min(skip, out.shape[1])
            out, skip = out[:, dropped:], skip - dropped
        if out.shape[1]:
            yield out
