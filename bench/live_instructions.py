"""Benchmark: instructions per live block, the fxhost app against the bare handler of
bench/streaming.py, counted by callgrind (the same count however busy the machine is).

    uv run python bench/live_instructions.py [--blocks 1000] [--functions 30]

Both ASGI apps are driven in-process, without sockets: a ``/ws/process`` session (start,
then 256-frame stereo f32le blocks through the reverb) whose ``receive`` hands over the
next message and whose ``send`` drops the reply. uvicorn's WebSocket protocol and the
kernel's loopback, which both servers pay alike per block, are left out: this is what the
app adds. One process runs under ``valgrind --tool=callgrind``: it starts both apps,
drives a session of each, warming up, then ``--blocks`` blocks, calling ``os.getppid()``
as the first of those is asked for and as the session ends; callgrind is told to dump
its counts before that call (``--dump-before=os_getppid``), so one dump holds exactly the
blocks' instructions, start-up and warm-up apart, by function. The deadline's watchdog
thread is stopped first (it wakes 10 times a second of wall time, which under valgrind
would count with the blocks). Minutes: Python runs about 50 times slower under callgrind,
and start-up is most of it.
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


async def drive(app, n: int, mark=None) -> None:
    """One /ws/process session of WARMUP + ``n`` blocks, then a disconnect; ``mark()``
    called when the first of the ``n`` blocks is asked for, and when the disconnect is."""
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
        if mark is not None and k in (WARMUP, n + WARMUP):
            mark()
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


def run_phases(n: int) -> None:
    """In this process (under valgrind): both apps started and warmed up, then ``n`` blocks
    through fxhost and ``n`` through the bare handler, a dump before each phase and after."""
    sys.path.insert(0, str(HERE))
    import streaming
    import uvloop
    from fxhost.api.app import create_app

    async def main() -> None:
        fx = create_app()
        bare = streaming.bare_app()
        async with fx.router.lifespan_context(fx):
            fx.state.services.streams.runner.stop()
            # Dumps: .1 start-up and fxhost's warm-up, .2 fxhost's n blocks, .3 the bare
            # handler's session start and warm-up, .4 its n blocks.
            await drive(fx, n, mark=os.getppid)
            await drive(bare, n, mark=os.getppid)

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=1000, help="blocks per app")
    parser.add_argument(
        "--functions",
        type=int,
        default=0,
        metavar="K",
        help="also list the K native functions whose self instructions per block differ most",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's files in DIR")
    parser.add_argument("--run", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        run_phases(args.run)
        return
    n = args.blocks
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            tmp = args.keep
            Path(tmp).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONHASHSEED": "0",
            "FXHOST_UPLOADS_DIR": f"{tmp}/uploads",
            "FXHOST_RENDERS_DIR": f"{tmp}/renders",
            "FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml"),
            "FXHOST_DATABASE_URL": f"sqlite://{tmp}/fxhost.db",
            "FXHOST_LOG_LEVEL": "warning",
        }
        out = f"{tmp}/callgrind"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-before=os_getppid",
            sys.executable,
            __file__,
            "--run",
            str(n),
        ]
        with open(f"{out}.log", "wb") as log:
            done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        if done.returncode:
            raise SystemExit(f"the callgrind run failed:\n{Path(f'{out}.log').read_text()[-3000:]}")
        phases = {"fxhost": f"{out}.2", "bare": f"{out}.4"}
        per_block = {w: summary(f) / n for w, f in phases.items()}
        per_fn = {w: {k: v / n for k, v in functions(f).items()} for w, f in phases.items()}
    print(f"instructions per 256-frame block, in-process ASGI app (callgrind, {n} blocks each):")
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
            "native functions, self instructions per block (the interpreter's own are "
            f"Python code running), the {args.functions} largest differences:"
        )
        print(f"  {'fxhost':>9} {'bare':>9} {'diff':>9}  function")
        for f in sorted(delta, key=lambda f: -abs(delta[f]))[: args.functions]:
            fx, bare = per_fn["fxhost"].get(f, 0), per_fn["bare"].get(f, 0)
            print(f"  {fx:>9,.0f} {bare:>9,.0f} {delta[f]:>+9,.0f}  {f}")


def summary(out: str) -> int:
    """The total instructions in a callgrind dump."""
    text = Path(out).read_text()
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))


def functions(out: str) -> dict[str, int]:
    """Self instructions by function (file:function) in a callgrind output file. The
    functions on the call stack when the dump was made (``main``, the event loop, the
    eval loop's outermost frame...) are listed by callgrind_annotate with the whole
    dump's count, not their own: they are left out."""
    command = ["callgrind_annotate", "--threshold=100", "--auto=no", out]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = summary(out)
    counts: dict[str, int] = {}
    for line in text.splitlines():
        found = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if found and ":" in found.group(2):
            name = found.group(2).split(" [")[0]
            count = int(found.group(1).replace(",", ""))
            if count < 0.99 * total:
                counts[name] = counts.get(name, 0) + count
    return counts


if __name__ == "__main__":
    main()
