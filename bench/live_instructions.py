"""Benchmark: instructions per live block, the fxhost app against the bare handler of
bench/streaming.py, counted by callgrind (the same count however busy the machine is).

    uv run python bench/live_instructions.py [--blocks 300,1300] [--functions 30]

Both ASGI apps are driven in-process, without sockets: a ``/ws/process`` session (start,
then 256-frame stereo f32le blocks through the reverb) whose ``receive`` hands over the
next message and whose ``send`` drops the reply. uvicorn's WebSocket protocol and the
kernel's loopback, which both servers pay alike per block, are left out: this is what the
app adds. Each app runs under ``valgrind --tool=callgrind`` twice, with two block counts
(all four at once); the difference of the totals over the difference of the counts is
the cost of one block, start-up cancelled out. The deadline's watchdog thread is stopped
first (it wakes 10 times a second of wall time, which under valgrind would count with the
blocks). Several minutes: Python runs about 50 times slower under callgrind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WARMUP = 200


async def drive(app, n: int) -> None:
    """One /ws/process session of WARMUP + ``n`` blocks, then a disconnect."""
    import streaming

    scope = {
        "type": "websocket",
        "path": "/ws/process",
        "raw_path": b"/ws/process",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "ws",
        "subprotocols": [],
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
    }
    opening = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": json.dumps(streaming.START)},
    ]
    blocks = [{"type": "websocket.receive", "bytes": p, "text": None} for p in streaming.PAYLOADS]
    received = sent = 0

    async def receive():
        nonlocal received
        received += 1
        if received <= 2:
            return opening[received - 1]
        k = received - 3
        if k < n + WARMUP:
            return blocks[k % len(blocks)]
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        nonlocal sent
        if message["type"] == "websocket.send" and message.get("bytes") is not None:
            sent += 1

    await app(scope, receive, send)
    if sent != n + WARMUP:
        raise RuntimeError(f"{sent} blocks came back of {n + WARMUP}")


def run_one(which: str, n: int) -> None:
    """In this process (under valgrind): both apps made, ``which`` driven ``n`` blocks."""
    sys.path.insert(0, str(HERE))
    import streaming
    import uvloop
    from fxhost.api.app import create_app

    async def main() -> None:
        fx = create_app()
        app = fx if which == "fxhost" else streaming.bare_app()
        async with fx.router.lifespan_context(fx):
            fx.state.services.streams.runner.stop()
            await drive(app, n)

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", default="300,1300", help="the two block counts")
    parser.add_argument(
        "--functions",
        type=int,
        default=0,
        metavar="K",
        help="also list the K native functions whose self instructions per block differ most",
    )
    parser.add_argument("--run", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run[0], int(args.run[1]))
        return
    low, high = (int(x) for x in args.blocks.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONHASHSEED": "0",
            "FXHOST_UPLOADS_DIR": f"{tmp}/uploads",
            "FXHOST_RENDERS_DIR": f"{tmp}/renders",
            "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            "FXHOST_LOG_LEVEL": "warning",
        }
        procs = {}
        for which in ("fxhost", "bare"):
            for n in (low, high):
                out = f"{tmp}/callgrind.{which}.{n}"
                # A database each: four apps migrating one SQLite file at once collide.
                env["FXHOST_DATABASE_URL"] = f"sqlite://{tmp}/fxhost-{which}-{n}.db"
                procs[which, n] = (
                    subprocess.Popen(
                        [
                            "valgrind",
                            "--tool=callgrind",
                            f"--callgrind-out-file={out}",
                            sys.executable,
                            __file__,
                            "--run",
                            which,
                            str(n),
                        ],
                        env=dict(env),
                        stdout=subprocess.DEVNULL,
                        # A file, not a pipe: four children writing while one is waited on
                        # would fill a pipe and stop.
                        stderr=open(f"{out}.log", "wb"),  # noqa: SIM115
                    ),
                    out,
                )
        totals = {}
        for key, (proc, out) in procs.items():
            proc.wait()
            if proc.returncode:
                raise SystemExit(f"{key} failed:\n{Path(f'{out}.log').read_text()[-3000:]}")
            totals[key] = int(re.search(r"^summary: (\d+)", Path(out).read_text(), re.M).group(1))
        if args.functions:
            per_fn = {
                w: {
                    f: (c - functions(procs[w, low][1]).get(f, 0)) / (high - low)
                    for f, c in functions(procs[w, high][1]).items()
                }
                for w in ("fxhost", "bare")
            }
    per_block = {w: (totals[w, high] - totals[w, low]) / (high - low) for w in ("fxhost", "bare")}
    print(f"instructions per 256-frame block, in-process ASGI app (callgrind, {low} and {high} blocks):")
    for w, v in per_block.items():
        print(f"  {w:<8}{v:>12,.0f}")
    print(
        f"  fxhost/bare {per_block['fxhost'] / per_block['bare']:.3f}, "
        f"fxhost - bare {per_block['fxhost'] - per_block['bare']:,.0f}"
    )
    if args.functions:
        names = set(per_fn["fxhost"]) | set(per_fn["bare"])
        delta = {f: per_fn["fxhost"].get(f, 0) - per_fn["bare"].get(f, 0) for f in names}
        print(
            f"native functions, self instructions per block (the interpreter's own are "
            f"Python code running), the {args.functions} largest differences:"
        )
        print(f"  {'fxhost':>9} {'bare':>9} {'diff':>9}  function")
        for f in sorted(delta, key=lambda f: -abs(delta[f]))[: args.functions]:
            fx, bare = per_fn["fxhost"].get(f, 0), per_fn["bare"].get(f, 0)
            print(f"  {fx:>9,.0f} {bare:>9,.0f} {delta[f]:>+9,.0f}  {f}")


def functions(out: str) -> dict[str, int]:
    """Self instructions by function (file:function) in a callgrind output file."""
    command = ["callgrind_annotate", "--threshold=100", "--auto=no", out]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if found and ":" in found.group(2):
            name = found.group(2).split(" [")[0]
            counts[name] = counts.get(name, 0) + int(found.group(1).replace(",", ""))
    return counts


if __name__ == "__main__":
    main()
