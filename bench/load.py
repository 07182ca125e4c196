"""Benchmark: a real ``fxhost serve`` under REST reads and many WebSocket clients at once,
first well-behaved, then with misbehaving clients added, then with every client gone.

    uv run python bench/load.py [--seconds 20] [--rest 16] [--ws 24] [--streams 2]
                                [--consumers 8] [--bad 16] [--kinds never-read,half-frame,abandon]

Phases (of ``--seconds`` in all: 40 % baseline, 40 % misbehaving, 20 % cool-down):

1. **baseline**: ``--rest`` httpx clients loop over REST reads (asset listing, asset
   downloads transcoded through the LRU cache of decoded audio, ``/api/effects``,
   ``/health``); ``--ws`` clients stream 256-frame stereo blocks through ``/ws/process``
   closed-loop; ``--streams`` shared streams, each fed in real time by a WebSocket
   producer and read by ``--consumers`` WebSocket consumers.
2. **misbehaving**: the same load, plus ``--bad`` clients of each kind: ``/ws/process``
   clients that send and never read; stream consumers that never read; clients that
   send half a binary frame and then reset the connection (or stall, holding it open);
   clients that create streams, write into them and abandon them.
3. **after**: all clients gone; the server is left alone.

Reported per phase: REST requests/s, WebSocket blocks/s, errors by kind, and the
server's memory from ``/proc/<pid>/status`` sampled every 50 ms (peak and last RSS;
VmHWM, the kernel's high-water mark). The ratios at the end are the misbehaving peak
RSS over the baseline peak, and the RSS after the cool-down over the baseline peak.

The server runs in a temporary folder on SQLite with ``FXHOST_STREAM_IDLE_SECONDS=2``, so
that abandoned streams expire within the run. The load generator is this one asyncio
process, on the same machine as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from benchkit import start_fxhost
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

SR = 48_000
CHANNELS = 2
BLOCK = 256
STEPS = [{"effect": "reverb"}]
START = {"type": "start", "steps": STEPS, "sample_rate": SR, "channels": CHANNELS, "format": "f32le"}
STREAM_BLOCK = 4096  # frames a stream producer writes at a time, paced in real time
IDLE_SECONDS = 2.0
SAMPLE_SECONDS = 0.05
KINDS = ("never-read", "half-frame", "abandon")


def wav(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    audio = (0.2 * rng.standard_normal((int(seconds * SR), CHANNELS))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pcm(frames: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((frames, CHANNELS))).astype("<f4").tobytes()


# -- measuring ----------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    requests: int = 0
    blocks: int = 0
    errors: Counter = field(default_factory=Counter)
    #: What the misbehaving clients did (resets sent, streams abandoned).
    misdeeds: Counter = field(default_factory=Counter)
    rss_peak: int = 0
    rss_last: int = 0
    hwm: int = 0
    seconds: float = 0.0


class Memory:
    """Samples the server's RSS into the current phase."""

    def __init__(self, pid: int):
        self.pid = pid

    def read(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
        return values["VmRSS"], values["VmHWM"]

    async def sample(self, phases: list[Phase]) -> None:
        while True:
            rss, hwm = self.read()
            phase = phases[-1]
            phase.rss_peak = max(phase.rss_peak, rss)
            phase.rss_last, phase.hwm = rss, hwm
            await asyncio.sleep(SAMPLE_SECONDS)


class Load:
    """The clients; each counts into ``self.phase`` (the current one)."""

    def __init__(self, base: str, port: int, args: argparse.Namespace):
        self.base = base
        self.ws_base = base.replace("http://", "ws://")
        self.port = port
        self.args = args
        self.phase = Phase("setup")
        self.assets: list[str] = []
        self.streams: list[str] = []
        self.stop = asyncio.Event()

    def error(self, kind: str) -> None:
        self.phase.errors[kind] += 1

    # -- well-behaved ---------------------------------------------------------------

    async def rest_client(self, worker: int) -> None:
        paths = ["/api/assets", "/api/effects", "/health"] + [
            f"/api/assets/{a}/audio?format=flac" for a in self.assets
        ]
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=self.base, timeout=30, limits=limits) as client:
            for i in range(worker, 1 << 60):
                if self.stop.is_set():
                    return
                try:
                    response = await client.get(paths[i % len(paths)])
                except httpx.HTTPError as error:
                    self.error(f"rest {type(error).__name__}")
                    continue
                if response.status_code == 200:
                    self.phase.requests += 1
                else:
                    self.error(f"rest {response.status_code}")

    async def ws_process_client(self, seed: int) -> None:
        block = pcm(BLOCK, seed)
        try:
            async with connect(
                f"{self.ws_base}/ws/process", max_size=None, compression=None, open_timeout=60
            ) as ws:
                await ws.send(json.dumps(START))
                await ws.recv()
                while not self.stop.is_set():
                    await ws.send(block)
                    reply = await ws.recv()
                    if isinstance(reply, bytes) and len(reply) == len(block):
                        self.phase.blocks += 1
                    else:
                        self.error("ws unexpected reply")
        except Exception as error:
            self.error(f"ws {type(error).__name__}")

    async def stream_producer(self, stream: str) -> None:
        block = pcm(STREAM_BLOCK, 1)
        period = STREAM_BLOCK / SR
        try:
            async with connect(
                f"{self.ws_base}/ws/streams/{stream}/input", max_size=None, compression=None
            ) as ws:
                due = time.monotonic()
                while not self.stop.is_set():
                    await ws.send(block)
                    due += period
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
        except Exception as error:
            self.error(f"producer {type(error).__name__}")

    async def stream_consumer(self, stream: str) -> None:
        try:
            async with connect(
                f"{self.ws_base}/ws/streams/{stream}/output", max_size=None, compression=None
            ) as ws:
                while not self.stop.is_set():
                    try:
                        message = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    if isinstance(message, bytes):
                        self.phase.blocks += len(message) // (CHANNELS * 4 * BLOCK)
                    else:
                        self.error(f"consumer {json.loads(message).get('type')}")
        except Exception as error:
            self.error(f"consumer {type(error).__name__}")

    def well_behaved(self) -> list:
        tasks = [self.rest_client(i) for i in range(self.args.rest)]
        tasks += [self.ws_process_client(i) for i in range(self.args.ws)]
        for stream in self.streams:
            tasks.append(self.stream_producer(stream))
            tasks += [self.stream_consumer(stream) for _ in range(self.args.consumers)]
        return tasks

    # -- misbehaving ----------------------------------------------------------------

    async def never_reads(self, path: str, send: bool) -> None:
        """Connects (and, for /ws/process, starts and sends blocks) and never reads; at
        the end of the phase the connection is dropped, not closed."""
        try:
            ws = await connect(
                f"{self.ws_base}{path}", max_size=None, compression=None, max_queue=1, ping_interval=None
            )
        except Exception as error:
            self.error(f"bad never-read {type(error).__name__}")
            return

        async def flood() -> None:
            await ws.send(json.dumps(START))
            block = pcm(BLOCK * 16, 2)
            while True:
                await ws.send(block)  # blocks once the server stops reading us

        sender = asyncio.ensure_future(flood() if send else self.stop.wait())
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({sender, stopped}, return_when="FIRST_COMPLETED")
            if sender.done() and sender.exception() is not None:
                self.error(f"bad never-read {type(sender.exception()).__name__}")
        finally:
            sender.cancel()
            stopped.cancel()
            ws.transport.abort()

    async def raw_ws(self, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientProtocol]:
        """A WebSocket opened over a plain socket, so that frames can be cut in half."""
        protocol = ClientProtocol(parse_uri(f"{self.ws_base}{path}"))
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            protocol.receive_data(data)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        return reader, writer, protocol

    async def half_frames(self, stall: bool) -> None:
        """Start a /ws/process session, send half a binary frame, then reset the
        connection (``stall`` False: again and again) or hold it open (``stall`` True)."""
        half = Frame(Opcode.BINARY, pcm(BLOCK * 64, 3)).serialize(mask=True, extensions=[])
        half = half[: len(half) // 2]
        while not self.stop.is_set():
            try:
                _reader, writer, protocol = await self.raw_ws("/ws/process")
                protocol.send_text(json.dumps(START).encode())
                writer.write(b"".join(protocol.data_to_send()))
                writer.write(half)
                await writer.drain()
                if stall:
                    await self.stop.wait()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # a reset, not a close
                self.phase.misdeeds["half-frame resets"] += 0 if stall else 1
            except Exception as error:
                self.error(f"bad half-frame {type(error).__name__}")
                await asyncio.sleep(0.1)

    async def abandon_streams(self) -> None:
        """Create a stream, write a second of audio into it, open a consumer and drop
        its connection, then leave the stream to the idle expiry."""
        body = pcm(SR, 4)
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = await client.post("/api/streams", json={"chain": STEPS})
                    if response.status_code != 201:
                        self.error(f"bad abandon {response.status_code}")  # 429: the stream limit
                        await asyncio.sleep(0.2)
                        continue
                    stream = response.json()["id"]
                    await client.post(f"/api/streams/{stream}/input", content=body)
                    consumer = await connect(f"{self.ws_base}/ws/streams/{stream}/output")
                    consumer.transport.abort()
                    self.phase.misdeeds["streams abandoned"] += 1
                except Exception as error:
                    self.error(f"bad abandon {type(error).__name__}")
                    await asyncio.sleep(0.2)

    def misbehaving(self) -> list:
        n, kinds = self.args.bad, self.args.kinds
        tasks = []
        if "never-read" in kinds:
            tasks += [self.never_reads("/ws/process", send=True) for _ in range(n)]
            tasks += [
                self.never_reads(f"/ws/streams/{self.streams[i % len(self.streams)]}/output", send=False)
                for i in range(n)
            ]
        if "half-frame" in kinds:
            tasks += [self.half_frames(stall=i % 2 == 1) for i in range(n)]
        if "abandon" in kinds:
            tasks += [self.abandon_streams() for _ in range(max(1, n // 4))]
        return tasks

    # -- phases ---------------------------------------------------------------------

    async def run_phase(self, phases: list[Phase], name: str, seconds: float, clients: list) -> None:
        self.phase = Phase(name)
        phases.append(self.phase)
        self.stop = asyncio.Event()
        print(f"{name}: {seconds:.0f} s, {len(clients)} clients", file=sys.stderr)
        start = time.monotonic()
        tasks = [asyncio.ensure_future(c) for c in clients]
        await asyncio.sleep(seconds)
        self.stop.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:  # stuck in a send the server never lets through
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.phase.seconds = time.monotonic() - start


async def drive(base: str, port: int, pid: int, args: argparse.Namespace) -> list[Phase]:
    load = Load(base, port, args)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for seed in range(4):
            response = await client.post(
                "/api/assets", params={"name": f"load-{seed}.wav"}, content=wav(0.5, seed)
            )
            response.raise_for_status()
            load.assets.append(response.json()["id"])
        for _ in range(args.streams):
            response = await client.post("/api/streams", json={"chain": STEPS})
            response.raise_for_status()
            load.streams.append(response.json()["id"])
    phases: list[Phase] = []
    memory = Memory(pid)
    load.phase = Phase("setup")
    phases.append(load.phase)
    sampler = asyncio.ensure_future(memory.sample(phases))
    share = args.seconds
    await load.run_phase(phases, "baseline", 0.4 * share, load.well_behaved())
    await load.run_phase(phases, "misbehaving", 0.4 * share, load.well_behaved() + load.misbehaving())
    await load.run_phase(phases, "after", max(0.2 * share, IDLE_SECONDS + 2), [])
    sampler.cancel()
    return phases[1:]


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    print(
        f"fxhost load: {args.rest} REST clients, {args.ws} /ws/process clients, {args.streams} streams x "
        f"{args.consumers} consumers; misbehaving: {args.bad} of each kind of {', '.join(args.kinds)}; "
        f"{args.seconds:.0f} s"
    )
    print(
        f"{'phase':<12} {'s':>5} {'REST req/s':>10} {'WS blocks/s':>11} {'peak RSS':>9} "
        f"{'last RSS':>9} {'VmHWM':>8}  errors"
    )
    for phase in phases:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(phase.errors.items())) or "none"
        if phase.misdeeds:
            errors += "; " + ", ".join(f"{k}: {v}" for k, v in sorted(phase.misdeeds.items()))
        print(
            f"{phase.name:<12} {phase.seconds:5.1f} {phase.requests / phase.seconds:10.0f} "
            f"{phase.blocks / phase.seconds:11.0f} {mib(phase.rss_peak):>9} {mib(phase.rss_last):>9} "
            f"{mib(phase.hwm):>8}  {errors}"
        )
    base, bad, after = phases
    print(f"misbehaving / baseline peak RSS: {bad.rss_peak / base.rss_peak:.2f}")
    print(f"RSS after the clients left / baseline peak RSS: {after.rss_last / base.rss_peak:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="the whole run (default 20)")
    parser.add_argument("--rest", type=int, default=16, help="REST clients")
    parser.add_argument("--ws", type=int, default=24, help="/ws/process clients")
    parser.add_argument("--streams", type=int, default=2, help="shared streams")
    parser.add_argument("--consumers", type=int, default=8, help="consumers per stream")
    parser.add_argument("--bad", type=int, default=16, help="misbehaving clients of each kind")
    parser.add_argument(
        "--kinds",
        type=lambda text: text.split(","),
        default=list(KINDS),
        help=f"misbehaving kinds, comma-separated (default: {','.join(KINDS)})",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server, port, log = start_fxhost(Path(tmp), {"FXHOST_STREAM_IDLE_SECONDS": str(IDLE_SECONDS)})
        base = f"http://127.0.0.1:{port}"
        try:
            phases = asyncio.run(drive(base, port, server.pid, args))
            report(phases, args)
            alive = server.poll() is None and httpx.get(f"{base}/health").status_code == 200
            print(f"server still up: {'yes' if alive else 'NO'}")
        finally:
            server.terminate()
            server.wait(timeout=30)
            tail = [line for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line]
            if tail:
                print(f"server log: {len(tail)} error line(s), e.g. {tail[0]}")


if __name__ == "__main__":
    main()
