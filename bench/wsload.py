"""A lean WebSocket load generator for ``bench/streaming.py``: real-time clients of
``WS /ws/process`` paced against the audio clock, spread over worker processes.

The ``websockets`` client costs the generator about as much CPU per block as the server
spends on it, which on a 2-core machine leaves too little for a server with 2 workers.
This client speaks just enough RFC 6455 on a non-blocking socket: the handshake, unmasked
server frames, and client frames masked with an all-zero key (a legal key, which makes
masking a copy: frames are built once, up front). Pings are answered. A reply's time is
the kernel's (SO_TIMESTAMPNS: when it reached the client's socket), so a generator
waiting for a core does not make the server look late. One process runs
every client it is given from one loop that sends each block when it is due (client i
of n is due at ``start + (k + i / n) * PERIOD``: phases spread over one period), stamping
sends and receipts with the monotonic clock, which all processes share. That loop runs
in C (bench/wsload_paced.c, compiled on first use with the machine's compiler) where a
compiler is found, for a fraction of the Python loop's CPU; the Python loop (``_paced``)
is the fallback and the reference for what it does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import json
import multiprocessing
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ZERO_MASK = b"\x00\x00\x00\x00"
#: Seconds a block may be sent before it is due: blocks due within it go together.
SLACK = 0.001
#: The shortest sleep between sends: the process wakes at most a thousand times a
#: second (an earlier version slept less than the event loop's 1 ms timer grain, which
#: rounded to no sleep at all and spun a whole core taken from the servers).
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


#: SO_TIMESTAMPNS, also the type of its control message (Linux's value where the socket
#: module does not name it).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("=qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
#: CLOCK_REALTIME - CLOCK_MONOTONIC, in ns: kernel stamps are real time, the bench's clock is
#: monotonic (the same in every process; it moves only if the clock is stepped mid-run).
_REAL_MINUS_MONO_NS = time.time_ns() - time.monotonic_ns()


class LeanClient:
    """One WebSocket connection on a non-blocking socket, read from the event loop's
    reader callback while it is set up and then by the paced part's own poll. Binary
    replies are stamped into ``received[k]`` in order, with the time the kernel queued
    them on the socket (SO_TIMESTAMPNS), not the time this process got round to reading
    them: these processes stand for clients on other machines and run on what the
    servers leave idle, so their reads can wait for a core while the reply is already
    there. Reads take one frame at a time, so each reply gets its own stamp."""

    def __init__(self, path: str, host: str, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.upgraded = False
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future = loop.create_future()
        self.text: asyncio.Queue[str] = asyncio.Queue()
        self.binary_waiter: asyncio.Future | None = None
        self.received: np.ndarray | None = None
        self.count = 0
        self.closed = False
        #: Bytes of the next binary reply (learnt from the first): the size of each read.
        self.reply_size = 0
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        loop.add_reader(sock.fileno(), self._readable)
        key = base64.b64encode(os.urandom(16)).decode()
        self.send(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _readable(self) -> None:
        while not self.closed and self.read_once():
            pass

    def read_once(self) -> bool:
        """One read from the socket, and the frames it completes; False if there was
        nothing to read (or the connection ended)."""
        # Up to the end of one reply: the stamp is the last segment's read, so a read
        # that took two replies would give the first the second's time.
        buf = self.buf
        want = self.reply_size - len(buf) if self.upgraded and len(buf) < self.reply_size else 65536
        try:
            data, ancillary, _, _ = self.sock.recvmsg(want, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as error:
            self._lost(error)
            return False
        if not data:
            self._lost(None)
            return False
        stamp = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(value)
                stamp = (sec * 1_000_000_000 + nsec - _REAL_MINUS_MONO_NS) / 1e9
        buf += data
        self._frames(time.monotonic() if stamp is None else stamp)
        return True

    def detach(self) -> None:
        """Stop reading from the event loop (the paced part polls the sockets itself)."""
        asyncio.get_running_loop().remove_reader(self.sock.fileno())

    def _frames(self, now: float) -> None:
        buf = self.buf
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
            if opcode == 2:
                self.reply_size = start + n - pos
                if self.received is not None and self.count < self.received.size:
                    self.received[self.count] = now
                self.count += 1
                if self.binary_waiter is not None and not self.binary_waiter.done():
                    self.binary_waiter.set_result(n)
            elif opcode == 1:
                self.text.put_nowait(bytes(buf[start : start + n]).decode())
            elif opcode == 9:  # ping -> pong
                self.send(client_frame(10, bytes(buf[start : start + n])))
            elif opcode == 8:
                self.closed = True
            pos = start + n
        del buf[:pos]

    def _lost(self, error: Exception | None) -> None:
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if not self.handshake.done():
            self.handshake.set_exception(error or ConnectionError("closed during the handshake"))

    def send(self, frame: bytes) -> bool:
        """Send a whole frame now; False if the socket's buffer is full (the server has
        stopped reading: the block counts as never sent)."""
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return False
        if sent < len(frame):
            raise RuntimeError("a partial frame was sent: the socket buffer is full")
        return True

    def expect_binary(self) -> asyncio.Future:
        """A future for the next binary frame: made before sending what it answers, so a
        reply that comes at once is not missed."""
        self.binary_waiter = asyncio.get_running_loop().create_future()
        return self.binary_waiter

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        if not self.closed:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            with contextlib.suppress(OSError):
                self.sock.send(client_frame(8, struct.pack("!H", 1000)))
        self.closed = True
        self.sock.close()


async def connect(port: int, path: str, start: dict, warmup: bytes) -> LeanClient:
    """Connect, start the session, wait for ready, and process one untimed warm-up block."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    client = LeanClient(path, f"127.0.0.1:{port}", sock)
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
    #: Each client's local TCP port (to match it with the server process that took it).
    ports: list[int]


async def _run_part(
    port: int,
    path: str,
    start_msg: dict,
    payloads: list[bytes],
    period: float,
    rows: list[int],
    n: int,
    blocks: int,
    library: str | None,
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
    due = target.T.ravel()
    cpu0 = time.process_time()
    if library:
        _paced_c(ctypes.CDLL(library, use_errno=True), clients, frames, due, blocks, sent, received)
    else:
        _paced(clients, frames, due.tolist(), blocks, sent)
    cpu = time.process_time() - cpu0
    ports = [c.port for c in clients]
    for client in clients:
        client.close()
    await asyncio.sleep(0.05)
    return Part(rows, target, sent, received, cpu, ports)


def _paced(clients: list[LeanClient], frames: list[bytes], due: list[float], blocks: int, sent) -> None:
    """Send every block when it is due, and read the replies, then wait up to 2 s for the
    last ones. No event loop: the process sleeps until the next blocks are due and then
    reads whatever replies came meanwhile, since the kernel stamped each on arrival. It
    wakes about once a millisecond rather than for every reply (five times as often at
    48 clients), which leaves that much more of the shared cores to the servers."""
    for client in clients:
        client.detach()
    poller = select.epoll()
    by_fd = {}
    for client in clients:
        poller.register(client.sock.fileno(), select.EPOLLIN)
        by_fd[client.sock.fileno()] = client
    m, total, nframes = len(clients), len(due), len(frames)
    monotonic, poll, sleep = time.monotonic, poller.poll, time.sleep

    def read_all() -> None:
        while events := poll(0):
            for fd, _ in events:
                by_fd[fd].read_once()

    e = 0
    try:
        while e < total:
            # Blocks due within the next SLACK go now: waking for each would cost more.
            horizon = monotonic() + SLACK
            while e < total and due[e] <= horizon:
                k, j = divmod(e, m)
                client = clients[j]
                # The replies before this block are read first, while their stamps are
                # their own: the kernel merges a reply into an unread one before it on the
                # socket, and the merged data keeps the later arrival time
                # (tcp_try_coalesce), so reply k - 1 read after reply k came would look a
                # whole period late.
                while client.count < k and not client.closed and client.read_once():
                    pass
                # Each send stamped on its own: a send wakes a server, which may take this
                # process's core before the next send (it runs on what servers leave).
                at = monotonic()
                if client.send(frames[k % nframes]):
                    sent[j, k] = at
                e += 1
            read_all()
            if e < total:
                sleep(max(MIN_SLEEP, due[e] - SLACK - monotonic()))
        # Replies still missing 2 s after the last send count as never received.
        end = monotonic() + 2.0
        while monotonic() < end and not all(c.count >= blocks or c.closed for c in clients):
            sleep(0.005)
            read_all()
    finally:
        poller.close()


#: The C version of _paced (bench/wsload_paced.c), compiled by Generators.
PACED_SOURCE = Path(__file__).with_name("wsload_paced.c")


def build_paced() -> tuple[str | None, str]:
    """Compile bench/wsload_paced.c with the machine's C compiler into a temporary folder;
    returns the shared library's path (None where that failed) and what was used (or why
    not), for the report."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return None, "Python loop (no C compiler found)"
    source = PACED_SOURCE.read_bytes()
    out = Path(tempfile.gettempdir()) / f"fxhost-wsload-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not out.exists():
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(PACED_SOURCE)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            return None, f"Python loop (the C loop did not compile: {done.stderr.strip()[:200]})"
        partial.replace(out)
    return str(out), "C loop (bench/wsload_paced.c)"


def _paced_c(
    lib, clients: list[LeanClient], frames: list[bytes], due: np.ndarray, blocks: int, sent, received
):
    """_paced, run by the C library: the same loop, sends and stamps."""
    for client in clients:
        client.detach()
        if client.buf:  # the warm-up block's reply was read whole: nothing may be left
            raise RuntimeError("unread bytes before the paced part")
    m = len(clients)
    frame_len = len(frames[0])
    if any(len(f) != frame_len for f in frames):
        raise ValueError("the C loop sends frames of one size")
    fds = (ctypes.c_int * m)(*(c.sock.fileno() for c in clients))
    buf = b"".join(frames)
    counts = (ctypes.c_long * m)()
    closed = (ctypes.c_int * m)()
    due = np.ascontiguousarray(due, dtype=np.float64)
    for a in (sent, received):  # written in place by the C loop, row by row
        if not (a.flags.c_contiguous and a.dtype == np.float64 and a.shape == (m, blocks)):
            raise ValueError("sent and received must be C-ordered float64 arrays of (clients, blocks)")
    ptr = ctypes.POINTER(ctypes.c_double)
    rc = lib.paced(
        ctypes.c_int(m),
        fds,
        ctypes.c_int(len(frames)),
        ctypes.c_char_p(buf),
        ctypes.c_long(frame_len),
        due.ctypes.data_as(ptr),
        ctypes.c_long(blocks),
        sent.ctypes.data_as(ptr),
        received.ctypes.data_as(ptr),
        counts,
        closed,
        ctypes.c_double(SLACK),
        ctypes.c_double(MIN_SLEEP),
        ctypes.c_double(2.0),
    )
    if rc == -2:
        raise RuntimeError("a partial frame was sent: the socket buffer is full")
    if rc:
        raise OSError(ctypes.get_errno(), "the C paced loop failed")
    for j, client in enumerate(clients):
        client.count, client.closed = counts[j], bool(closed[j])


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

    def __init__(self, count: int, idle: bool = False, c_loop: bool = True):
        #: The compiled C loop (None: the Python one), and which ran, for the report.
        self.library, self.loop = build_paced() if c_loop else (None, "Python loop")
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
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
        """``n`` real-time clients for ``blocks`` blocks each, client i on process
        ``i % count``. Returns target, sent and received times, shaped (n, blocks), the
        generator processes' CPU seconds over the paced part, and each client's local
        port. ``on_start`` is called just before the clock starts (to start the meters)."""
        count = len(self.conns)
        jobs = [[i for i in range(n) if i % count == g] for g in range(count)]
        used = [g for g in range(count) if jobs[g]]
        for g in used:
            self.conns[g].send((port, path, start_msg, payloads, period, jobs[g], n, blocks, self.library))
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
        ports = np.zeros(n, dtype=int)
        for g in used:
            kind, part = self.conns[g].recv()
            if kind != "part":
                raise RuntimeError(f"generator {g} failed: {part}")
            target[part.rows], sent[part.rows], received[part.rows] = part.target, part.sent, part.received
            ports[part.rows] = part.ports
            cpu += part.cpu_seconds
        return target, sent, received, cpu, ports

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
