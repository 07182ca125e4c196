"""Offline rendering of a file through a chain, streamed block by block."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fxhost_sdk import AssetLoader, FieldError, LoadedAudio

from fxhost import audiofile
from fxhost.chains import AssetChecker
from fxhost.engine import RENDER_BLOCK, CompiledChain, Step, render_blocks


def file_assets(*folders: Path) -> tuple[AssetChecker, AssetLoader]:
    """Asset parameters for ``fxhost render``: a file path, relative to the working
    directory or else to one of ``folders`` (the config file's). Returns the checker
    (it must exist and be audio) and the loader."""

    def find(ref: str, path: str) -> Path:
        for base in (Path.cwd(), *folders):
            candidate = base / ref
            if candidate.is_file():
                return candidate
        raise FieldError(path, f"no audio file {ref!r}")

    def check(ref: str, path: str) -> None:
        try:
            audiofile.probe(find(ref, path))
        except audiofile.AudioFormatError as error:
            raise FieldError(path, str(error)) from None

    def load(ref: str, path: str) -> LoadedAudio:
        info = audiofile.probe(file := find(ref, path))
        with audiofile.open_input(file) as reader:
            return LoadedAudio(reader.read(), info.sample_rate)

    return check, load


@dataclass(frozen=True)
class RenderResult:
    input: audiofile.AudioInfo
    output_frames: int
    tail_frames: int
    format: str
    subtype: str


def render_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    steps: Sequence[Step],
    *,
    tail: bool = True,
    max_tail_seconds: float = 30.0,
    block_frames: int = RENDER_BLOCK,
    progress: Callable[[int, int], None] | None = None,
    assets: AssetLoader | None = None,
) -> RenderResult:
    """Render ``input_path`` through ``steps`` into ``output_path``.

    Keeps the input's sample rate and channel count; the output format comes from
    the output's extension. The output appears atomically: it is written to a
    temporary file beside it and renamed once complete, so a failed render leaves
    nothing behind. ``progress(done_frames, total_frames)`` is called per block.
    """
    output_path = Path(output_path)
    with audiofile.open_input(input_path) as source:
        info = source.info
        fmt, subtype = audiofile.output_format(output_path, info.subtype)
        chain = CompiledChain(steps, info.sample_rate, info.channels, assets=assets)
        tail_frames = chain.tail_frames(max_tail_seconds) if tail else 0
        total = info.frames + tail_frames
        fd, tmp_name = tempfile.mkstemp(
            dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".part"
        )
        os.close(fd)
        try:
            done = 0
            with audiofile.open_output(tmp_name, info.sample_rate, info.channels, fmt, subtype) as sink:
                blocks = source.blocks(block_frames)
                for block in render_blocks(chain, blocks, tail_frames=tail_frames, block_frames=block_frames):
                    sink.write(block)
                    done += block.shape[1]
                    if progress:
                        progress(done, total)
            os.replace(tmp_name, output_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
    return RenderResult(info, done, tail_frames, fmt, subtype)
