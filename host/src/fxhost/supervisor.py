"""The worker processes of ``fxhost serve --workers N``: uvicorn's supervisor, with a
listening socket of its own for each worker and SIGHUP handed on.

uvicorn gives every worker the same listening socket, and whichever is awake accepts: an
event loop accepts every connection waiting when it wakes, so a burst of connections (a
room of clients joining, or reconnecting after a network blip) lands on one worker. Live
audio costs per connection, so that worker's blocks go late while the other idles
(bench/streaming.py saw splits of 40 to 16 and 42 to 6). Here each worker listens on its
own socket bound with SO_REUSEPORT to the same address, and the kernel spreads new
connections over the sockets by a hash of their addresses, bursts or not. The supervisor
keeps every socket open: a connection hashed to a worker that is being restarted waits in
its socket's queue for the new worker rather than being refused.
"""

from __future__ import annotations

import logging
import os
import signal
import socket

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

log = logging.getLogger(__name__)
#: uvicorn's own log, where it says where it listens.
uvicorn_log = logging.getLogger("uvicorn.error")


def listening_sockets(config: uvicorn.Config, count: int) -> list[socket.socket]:
    """``count`` TCP sockets bound to the configured address with SO_REUSEPORT, each to be
    listened on by one worker's server. A taken address stops here, as uvicorn does."""
    ipv6 = bool(config.host) and ":" in config.host
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family=socket.AF_INET6 if ipv6 else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Port 0 picks a free port once; the others join it.
        port = sockets[0].getsockname()[1] if sockets else config.port
        try:
            sock.bind((config.host, port))
        except OSError as error:
            uvicorn_log.error("%s", error)
            raise SystemExit(STARTUP_FAILURE) from None
        sock.set_inheritable(True)
        sockets.append(sock)
    address = f"[{config.host}]" if ipv6 else config.host
    uvicorn_log.info(
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "https" if config.is_ssl else "http",
        address,
        sockets[0].getsockname()[1],
    )
    return sockets


class Supervisor(Multiprocess):
    """uvicorn's supervisor; worker i is given ``listeners[i]`` alone (at start and when it
    is replaced), and SIGHUP is handed on to each worker, which reads plugins.toml again
    (uvicorn's own answer to SIGHUP replaces every worker, cutting their live streams)."""

    def __init__(self, config: uvicorn.Config, listeners: list[socket.socket]):
        super().__init__(config, sockets=listeners)
        self.listeners = listeners

    def init_processes(self) -> None:
        for listener in self.listeners:
            process = Process(self.config, [listener])
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        # uvicorn's, but a replacement gets the socket of the worker it replaces.
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # it may be hung rather than dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("Child process [%s] failed to start, stopping the parent process.", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("Child process [%s] died", process.pid)
            process = Process(self.config, [self.listeners[idx]])
            process.start()
            self.processes[idx] = process

    def handle_hup(self) -> None:
        log.info("SIGHUP: each worker reads the plugins file again")
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGHUP)

    def handle_ttin(self) -> None:
        log.warning("SIGTTIN ignored: the number of workers is fixed (FXHOST_WORKERS)")

    def handle_ttou(self) -> None:
        log.warning("SIGTTOU ignored: the number of workers is fixed (FXHOST_WORKERS)")


def serve_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` worker processes until the supervisor is stopped."""
    listeners = listening_sockets(config, config.workers)
    try:
        Supervisor(config, listeners).run()
    finally:
        for sock in listeners:
            sock.close()
