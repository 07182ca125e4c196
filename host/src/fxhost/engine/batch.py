"""Many files through one chain on the local cores (``fxhost render --out-dir``).

The files are found (:func:`find_inputs`), each is given its output
(:class:`BatchFile`), and :func:`render_batch` runs them in a
:class:`~fxhost.engine.workers.WorkerPool`: as many at once as it has processes, each
within the time limit (a hung effect is killed and named, as for renders), each failing
alone. An output appears only once complete: the worker writes a temporary file beside
it and renames it; a worker killed at the time limit cannot clean up after itself, so
the temporary file is named here and removed here whatever happened.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from fxhost_sdk.host import AssetLoader

from fxhost.audio.formats import AUDIO_EXTENSIONS, RenderOutput
from fxhost.engine.compiled import Step
from fxhost.engine.offline import RenderResult, render_file
from fxhost.engine.workers import WorkerPool


def find_inputs(
    paths: Sequence[Path], *, recursive: bool, skip: Path | None = None
) -> Iterator[tuple[Path, PurePath]]:
    """``(file, its output's path relative to the output folder, with the input's
    extension)`` for each of ``paths``: a file as it is (whatever its name: it is read by
    content), a folder's audio files by extension (:data:`AUDIO_EXTENSIONS`, any case),
    in name order; with ``recursive`` its sub-folders' too, kept as sub-folders. Hidden
    files and folders (a leading ``.``: among them the temporary files of a batch under
    way) and the folder ``skip`` (the output folder, when it lies inside an input folder)
    are left out. A path that does not exist is passed on as a file: it fails, named."""
    skipped = skip.resolve() if skip is not None else None
    for path in paths:
        if not path.is_dir():
            yield path, PurePath(path.name)
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(
                name
                for name in subfolders
                if recursive and not name.startswith(".") and Path(folder, name).resolve() != skipped
            )
            for name in sorted(names):
                file = Path(folder, name)
                if not name.startswith(".") and file.suffix.lower() in AUDIO_EXTENSIONS and file.is_file():
                    yield file, file.relative_to(path)


@dataclass(frozen=True)
class BatchFile:
    source: Path
    target: Path
    output: RenderOutput
    #: How messages name the input: its path as given or found.
    label: str


@dataclass(frozen=True)
class FileOutcome:
    file: BatchFile
    result: RenderResult | None = None
    #: Why it failed (None if it was rendered): an error of the input, the output, or an
    #: EffectFault (EffectTimeout past the time limit, naming the step).
    error: Exception | None = None


async def render_batch(
    files: Sequence[BatchFile],
    steps: Sequence[Step],
    *,
    workers: int,
    time_limit: float,
    tail: bool,
    max_tail_seconds: float,
    assets: AssetLoader | None = None,
    progress: Callable[[BatchFile, float], None] | None = None,
    finished: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Render ``files`` through ``steps``, ``workers`` at once in worker processes forked
    from this one (``steps`` and ``assets`` must pickle; call from a process whose other
    threads, if any, hold no lock a worker needs). A file that fails is an outcome like
    the others: the rest go on.
    ``progress(file, fraction)`` and ``finished(outcome)`` are called on the event loop."""
    if not files:
        return []
    # Forked from this process, which has imported the engine and the effects already:
    # a forkserver would import them again before the first file (see WorkerPool).
    pool = WorkerPool(min(workers, len(files)), time_limit, start_method="fork")
    pool.start()

    temps: set[Path] = set()  # of the files under way

    async def one(file: BatchFile) -> FileOutcome:
        temp = file.target.with_name(f".{file.target.name}.{secrets.token_hex(4)}.part")
        temps.add(temp)
        try:
            result = await pool.run(
                render_into,
                file.source,
                file.target,
                temp,
                list(steps),
                output=file.output,
                display_name=file.label,
                tail=tail,
                max_tail_seconds=max_tail_seconds,
                assets=assets,
                progress=(lambda fraction: progress(file, fraction)) if progress else None,
            )
            outcome = FileOutcome(file, result)
        except Exception as error:  # its worker is done with it: it raised, died or was killed
            outcome = FileOutcome(file, error=error)
        # Renamed if it was rendered; else what a failure left. (Cancelled, the file's
        # worker may still be writing it: it is removed once the pool has stopped.)
        temp.unlink(missing_ok=True)
        temps.discard(temp)
        if finished is not None:
            finished(outcome)
        return outcome

    try:
        return await asyncio.gather(*(one(file) for file in files))
    finally:
        await pool.stop()  # kills the workers, whatever they are doing
        for temp in temps:
            temp.unlink(missing_ok=True)


def render_into(
    source: Path,
    target: Path,
    temp: Path,
    steps: list[Step],
    *,
    output: RenderOutput,
    progress: Callable[[float], None],
    **options,
) -> RenderResult:
    """In a worker process: :func:`~fxhost.engine.offline.render_file` into ``temp``, then
    made durable and renamed to ``target`` (``temp`` is named by the caller, which removes
    it if this process is killed halfway)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    result = render_file(
        source,
        temp,
        steps,
        output=output,
        atomic=False,
        progress=lambda done, total: progress(done / max(1, total)),
        **options,
    )
    with open(temp, "rb") as written:  # the writer does not fsync (audio.files.AudioWriter)
        os.fsync(written.fileno())
    os.replace(temp, target)
    return result
