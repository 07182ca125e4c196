"""A lean WebSocket load generator for ``bench/streaming.py``: real-time clients of
``WS /ws/process`` paced against the audio clock, spread over worker processes.

The ``websockets`` client costs the generator about as much CPU per block as the server
spends on it, which on a 2-core machine leaves too little for a server with 2 workers.
This client is an asyncio Protocol speaking just enough RFC 6455: the handshake, unmasked
server frames, and client frames masked with an all-zero key (a legal key, which makes
masking a copy: frames are built once, up front). Pings are answered. One process runs
every client it is given from one task that sends each block when it is due (client i
of n is due at ``start + (k + i / n) * PERIOD``: phases spread over one period), stamping
sends and receipts with the monotonic clock, which all processes share.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import struct
import time
from dataclasses import dataclass

import numpy as np

_ZERO_MASK = b"\x00\x00\x00\x00"
#: Seconds a block may be sent before it is due (the event loop's timer grain).
SLACK = 0.001
#: The shortest sleep: uvloop (libuv) rounds a timer to whole milliseconds, and a
#: sleep under half of one rounds to zero, so sleeping any less spins the loop (a
#: whole core, taken from the servers measured on the same machine).
MIN_SLEEP = 0.001


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (FIN set) with the all-zero masking key."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


class LeanClient(asyncio.Protocol):
    """One WebSocket connection; binary replies are stamped into ``received[k]`` in order."""

    def __init__(self, path: str, host: str):
        self.path, self.host = path, host
        self.buf = bytearray()
        self.upgraded = False
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.text: asyncio.Queue[str] = asyncio.Queue()
        self.binary_waiter: asyncio.Future | None = None
        self.received: np.ndarray | None = None
        self.count = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.handshake.set_exception(RuntimeError(f"handshake refused: {status!r}"))
                return
            self.upgraded = True
            self.handshake.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            if size - start < n:
                break
            pos = start + n
            if opcode == 2:
                if self.received is not None and self.count < self.received.size:
                    self.received[self.count] = now
                self.count += 1
                if self.binary_waiter is not None and not self.binary_waiter.done():
                    self.binary_waiter.set_result(n)
            elif opcode == 1:
                self.text.put_nowait(bytes(buf[start:pos]).decode())
            elif opcode == 9:  # ping -> pong
                self.transport.write(client_frame(10, bytes(buf[start:pos])))
            elif opcode == 8:
                self.closed = True
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))

    def send(self, frame: bytes) -> None:
        self.transport.write(frame)

    def expect_binary(self) -> asyncio.Future:
        """A future for the next binary frame: made before sending what it answers, so a
        reply that comes at once is not missed."""
        self.binary_waiter = asyncio.get_running_loop().create_future()
        return self.binary_waiter

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(client_frame(8, struct.pack("!H", 1000)))
            self.transport.close()


async def connect(port: int, path: str, start: dict, warmup: bytes) -> LeanClient:
    """Connect, start the session, wait for ready, and process one untimed warm-up block."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: LeanClient(path, f"127.0.0.1:{port}"), "127.0.0.1", port)
    await asyncio.wait_for(client.handshake, 60)
    client.send(client_frame(1, json.dumps(start).encode()))
    ready = json.loads(await asyncio.wait_for(client.text.get(), 60))
    if ready.get("type") != "ready":
        raise RuntimeError(f"expected ready, got {ready}")
    reply = client.expect_binary()
    client.send(client_frame(2, warmup))
    await asyncio.wait_for(reply, 60)
    client.count = 0
    return client


@dataclass
class Part:
    """What one generator process measured: its clients' rows of the run's arrays."""

    rows: list[int]
    target: np.ndarray
    sent: np.ndarray
    received: np.ndarray
    cpu_seconds: float


async def _run_part(
    port: int,
    path: str,
    start_msg: dict,
    payloads: list[bytes],
    period: float,
    rows: list[int],
    n: int,
    blocks: int,
    conn,
) -> Part:
    frames = [client_frame(2, p) for p in payloads]
    clients: list[LeanClient] = []
    for i in range(0, len(rows), 16):  # a few at a time: connection setup is not measured
        clients += await asyncio.gather(
            *(connect(port, path, start_msg, payloads[0]) for _ in rows[i : i + 16])
        )
    m = len(rows)
    received = np.full((m, blocks), np.nan)
    sent = np.full((m, blocks), np.nan)
    for j, client in enumerate(clients):
        client.received = received[j]
    conn.send("connected")
    t0 = conn.recv()  # the shared start, on the monotonic clock
    phase = np.array(rows, dtype=float) / n
    target = t0 + period * (np.arange(blocks)[None, :] + phase[:, None])
    # Every client's sends in time order: client j's block k is event k * m + j (rows are
    # in ascending phase).
    due = target.T.ravel().tolist()
    cpu0 = time.process_time()
    total = m * blocks
    e = 0
    nframes = len(frames)
    sleep = asyncio.sleep
    monotonic = time.monotonic
    while e < total:
        # Timers are 1 ms grained: blocks due within the next millisecond go now (early
        # by less than the timer's grain), else waking for each would spin the loop.
        now = monotonic()
        horizon = now + SLACK
        while e < total and due[e] <= horizon:
            k, j = divmod(e, m)
            clients[j].transport.write(frames[k % nframes])
            sent[j, k] = now
            e += 1
        if e < total:
            await sleep(max(MIN_SLEEP, due[e] - SLACK - monotonic()))
    # Replies still missing 2 s after the last send count as never received.
    end = monotonic() + 2.0
    while monotonic() < end and any(c.count < blocks for c in clients):
        await sleep(0.005)
    cpu = time.process_time() - cpu0
    for client in clients:
        client.close()
    await sleep(0.05)
    return Part(rows, target, sent, received, cpu)


def _worker(conn, idle: bool) -> None:
    """A generator process: runs the parts it is sent until it is sent None."""
    import uvloop

    if idle:
        # Clients stand for remote machines: here they run only when the servers leave a
        # core idle, instead of being scheduled in turn with them (up to milliseconds of
        # wake-up delay for a server on a busy core).
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            part = uvloop.run(_run_part(*job, conn))
        except Exception as error:  # reported to the parent, which stops the bench
            conn.send(("error", repr(error)))
            continue
        conn.send(("part", part))


class Generators:
    """``count`` generator processes, kept for the whole benchmark; with ``idle``, under
    the SCHED_IDLE policy (Linux)."""

    def __init__(self, count: int, idle: bool = False):
        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, idle), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def run(
        self,
        port: int,
        path: str,
        start_msg: dict,
        payloads: list[bytes],
        period: float,
        n: int,
        blocks: int,
        on_start=None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """``n`` real-time clients for ``blocks`` blocks each, client i on process
        ``i % count``. Returns target, sent and received times, shaped (n, blocks), and
        the generator processes' CPU seconds over the paced part. ``on_start`` is called
        just before the clock starts (to start the meters)."""
        count = len(self.conns)
        jobs = [[i for i in range(n) if i % count == g] for g in range(count)]
        used = [g for g in range(count) if jobs[g]]
        for g in used:
            self.conns[g].send((port, path, start_msg, payloads, period, jobs[g], n, blocks))
        for g in used:
            reply = self.conns[g].recv()
            if reply != "connected":
                raise RuntimeError(f"generator {g}: {reply}")
        t0 = time.monotonic() + 0.2
        if on_start is not None:
            on_start()
        for g in used:
            self.conns[g].send(t0)
        target = np.full((n, blocks), np.nan)
        sent, received = target.copy(), target.copy()
        cpu = 0.0
        for g in used:
            kind, part = self.conns[g].recv()
            if kind != "part":
                raise RuntimeError(f"generator {g} failed: {part}")
            target[part.rows], sent[part.rows], received[part.rows] = part.target, part.sent, part.received
            cpu += part.cpu_seconds
        return target, sent, received, cpu

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
