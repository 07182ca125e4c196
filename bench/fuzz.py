"""Fuzzing for longer than CI can: the targets of tests/support/fuzz_targets.py (the same
ones tests/fuzz runs a few hundred times), for as long as asked.

    uv run --with atheris python bench/fuzz.py --target decode --seconds 600
    uv run python bench/fuzz.py --target ws-text --seconds 120      # hypothesis, no atheris

Targets: ``decode`` (an upload opened, probed and read as the server does), ``ws-text``
(a /ws/process text message), ``ws-frame`` (a binary PCM frame; the first input byte
picks the channel count and the sample format).

With atheris importable (``--engine auto``, the default) libFuzzer drives it, with
coverage of fxhost's Python code and the seed files as the starting corpus; otherwise
hypothesis runs the same strategies as the tests, batch after batch, unseeded.

A crash is any exception the target lets out (a broken property is an AssertionError).
Each distinct one (exception type and where it was raised) is counted once and its
first input saved in ``--crash-dir``; fuzzing goes on. Native crashes (a segfault in a
decoder) and hangs (over ``--timeout`` s on one input) stop libFuzzer, which saves the
input itself. The decoders' own chatter on stderr (mpg123...) goes to
``<crash-dir>/stderr.log``.

Prints executions, executions per second and the distinct crashes, and exits 1 if any.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

TARGETS = ("decode", "ws-text", "ws-frame")


class Campaign:
    """Runs one target on inputs and keeps the count and the distinct crashes."""

    def __init__(self, target: Callable[[object], None], crash_dir: Path, seconds: float):
        self.target, self.crash_dir, self.seconds = target, crash_dir, seconds
        self.executions = 0
        self.crashes: dict[str, str] = {}  # signature -> saved input
        self.started = time.monotonic()

    def run(self, value: object, raw: bytes) -> None:
        self.executions += 1
        try:
            self.target(value)
        except Exception as error:
            self.record(error, raw)

    def record(self, error: Exception, raw: bytes) -> None:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        signature = f"{type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        if signature in self.crashes:
            return
        name = f"crash-{hashlib.sha1(raw).hexdigest()[:12]}"
        (self.crash_dir / name).write_bytes(raw)
        self.crashes[signature] = name
        first = (str(error).splitlines() or [""])[0][:160]
        print(f"new crash: {signature}: {first} -> {self.crash_dir / name}", flush=True)

    def time_is_up(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def report(self, engine: str, target: str) -> int:
        elapsed = time.monotonic() - self.started
        print(f"target {target}, engine {engine}: {self.executions} executions in {elapsed:.1f} s")
        print(f"executions/s: {self.executions / elapsed:.1f}")
        print(f"distinct crashes: {len(self.crashes)}")
        for signature, name in self.crashes.items():
            print(f"  {signature}: {self.crash_dir / name}")
        return 1 if self.crashes else 0


def from_bytes(target: str, data: bytes) -> object:
    """The target's input made of raw fuzzer bytes."""
    if target == "decode":
        return data
    if target == "ws-text":
        return data.decode("utf-8", "replace")
    head = data[0] if data else 0
    fmt = "s16le" if head & 0x80 else "f32le"
    return (data[1:], (head & 0x1F) + 1, fmt)


def as_bytes(target: str, value: object) -> bytes:
    """How a hypothesis input is saved."""
    if target == "decode":
        return value  # type: ignore[return-value]
    if target == "ws-text":
        return str(value).encode("utf-8", "surrogatepass")
    data, channels, fmt = value  # type: ignore[misc]
    return bytes([(channels - 1) | (0x80 if fmt == "s16le" else 0)]) + data


def make_target(name: str, scratch: Path) -> Callable[[object], None]:
    import fuzz_targets as ft

    if name == "decode":
        return ft.DecodeTarget(scratch)  # type: ignore[return-value]
    if name == "ws-text":
        return ft.check_ws_text  # type: ignore[return-value]
    return lambda value: ft.check_ws_frame(*value)  # type: ignore[misc]


def seeds(name: str) -> list[bytes]:
    import fuzz_targets as ft

    if name == "decode":
        return list(ft.seed_files().values())
    if name == "ws-text":
        return [m.encode() for m in ft.seed_messages()]
    return [bytes([1]) + bytes(64), bytes([0x81]) + bytes(64)]


def run_atheris(args: argparse.Namespace, crash_dir: Path) -> int:
    import atheris

    with atheris.instrument_imports(include=["fxhost", "fxhost_sdk", "fuzz_targets"]):
        import fuzz_targets  # noqa: F401 - instrumented before the target imports it

    corpus = Path(tempfile.mkdtemp(prefix="corpus-", dir=crash_dir))
    for i, seed in enumerate(seeds(args.target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    campaign = Campaign(make_target(args.target, crash_dir), crash_dir, args.seconds)

    def one_input(data: bytes) -> None:
        if campaign.time_is_up():
            os._exit(campaign.report("atheris", args.target))
        campaign.run(from_bytes(args.target, data), data)

    libfuzzer = [
        sys.argv[0],
        str(corpus),
        f"-timeout={args.timeout}",
        "-rss_limit_mb=4096",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={crash_dir}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()
    return campaign.report("atheris", args.target)  # libFuzzer ran out of inputs


def run_hypothesis(args: argparse.Namespace, crash_dir: Path) -> int:
    import fuzz_targets as ft
    from hypothesis import HealthCheck, given, settings

    strategy = {"decode": ft.upload_bodies, "ws-text": ft.ws_texts, "ws-frame": ft.ws_frames}[args.target]()
    campaign = Campaign(make_target(args.target, crash_dir), crash_dir, args.seconds)
    batch = settings(
        max_examples=1000,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )

    @batch
    @given(strategy)
    def one_batch(value: object) -> None:
        if not campaign.time_is_up():
            campaign.run(value, as_bytes(args.target, value))

    while not campaign.time_is_up():
        one_batch()
    return campaign.report("hypothesis", args.target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--crash-dir", type=Path, help="default: a new folder under the temp dir")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take (atheris)")
    parser.add_argument("--max-len", type=int, default=65536, help="largest input in bytes (atheris)")
    args = parser.parse_args()

    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "hypothesis"
        else:
            engine = "atheris"
    crash_dir = args.crash_dir or Path(tempfile.mkdtemp(prefix=f"fxhost-fuzz-{args.target}-"))
    crash_dir.mkdir(parents=True, exist_ok=True)
    print(f"fuzzing {args.target} with {engine} for {args.seconds:.0f} s; crashes in {crash_dir}", flush=True)

    # The decoders print warnings of their own on every damaged file: keep them apart.
    log = os.open(crash_dir / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    runner = run_atheris if engine == "atheris" else run_hypothesis
    return runner(args, crash_dir)


if __name__ == "__main__":
    sys.exit(main())
