"""Crash safety: the real server is killed with SIGKILL in the middle of uploads and
renders, restarted on the same data folder and database, and must show

- every acknowledged asset listed, its bytes (downloaded, and on disk) the sha256 sent;
- no asset that was not sent whole (no half-written upload, no render output whose
  render is not done);
- no file in the uploads/renders folders without its row, once the start-up sweep has
  run (it runs before /health answers, so a started server has swept);
- interrupted renders ``failed`` with an error saying why; finished ones intact.

Each round runs the same concurrent clients (slow uploads sent in chunks, quick
uploads acknowledged one after another, long and short renders) and kills the server
at a different point. What was sent and acknowledged is kept across rounds, so a
later crash must not lose what an earlier round stored either.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from restkit import PG_URL, Server, encode, fresh_postgres, kill_tree, start_server, tone

pytestmark = pytest.mark.slow

#: (database, server processes): SQLite in one process; PostgreSQL, the store for several
#: processes, with two uvicorn workers sharing the data folder (each one's start-up sweep
#: must leave the other's uploads in progress alone).
SETUPS = [
    pytest.param("sqlite", 1, id="sqlite"),
    pytest.param(
        "postgres",
        2,
        id="postgres-2-workers",
        marks=pytest.mark.skipif(
            not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set (.ci/run sets it to the local PostgreSQL)"
        ),
    ),
]

SR = 48000
SLOW_UPLOADS = 3
SLOW_CHUNKS = 400  # a slow body is sent in this many pieces, a pause between each
QUICK_UPLOADERS = 2
SHORT_RENDERS = 2  # threads that render short assets back to back
#: Where each round kills the server (see ``wait_for_kill_point``).
KILL_POINTS = ("mid-body", "after-ack", "render-writing", "render-done")
SHORT_CHAIN = [{"effect": "reverb", "params": {"room_size": 0.5}}]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Sent:
    name: str
    sha256: str
    #: The last byte of the body was handed to the HTTP client: the server may have
    #: stored it whole even if its answer was lost in the crash.
    whole: bool = False
    #: The id the server acknowledged (201), if the answer arrived.
    id: str | None = None


@dataclass
class RenderSent:
    id: str
    #: The result (id, sha256) when the render was seen done before the kill.
    result: tuple[str, str] | None = None


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged, over all rounds."""

    uploads: dict[str, Sent] = field(default_factory=dict)  # by name
    renders: dict[str, RenderSent] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    names: Iterator[int] = field(default_factory=itertools.count)

    def new_upload(self, stem: str, body: bytes) -> Sent:
        with self.lock:
            sent = Sent(f"{stem}-{next(self.names)}.wav", sha(body))
            self.uploads[sent.name] = sent
        return sent


@dataclass
class Round:
    """The clients of one round and the signals the kill point waits for."""

    server: Server
    ledger: Ledger
    long_source: str
    short_source: str
    killed: threading.Event = field(default_factory=threading.Event)
    acked: threading.Event = field(default_factory=threading.Event)
    render_done: threading.Event = field(default_factory=threading.Event)
    slow_progress: list[int] = field(default_factory=lambda: [0] * SLOW_UPLOADS)
    long_render: str | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    #: What went wrong in the client threads (an assertion there must fail the test).
    failures: list[BaseException] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return self.server.client()

    # -- clients --------------------------------------------------------------------

    def slow_upload(self, slot: int) -> None:
        """One upload whose body trickles in: the kill finds it mid-body."""
        body = encode(tone(2.0, SR, seed=100 + slot), SR, "WAV", "PCM_16")
        sent = self.ledger.new_upload("slow", body)
        piece = -(-len(body) // SLOW_CHUNKS)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), piece):
                if start + piece >= len(body):
                    sent.whole = True  # set before the last piece leaves, to err on the safe side
                yield body[start : start + piece]
                self.slow_progress[slot] += 1
                self.killed.wait(0.01)

        self.post_upload(sent, chunks())

    def quick_uploads(self, worker: int) -> None:
        """Small uploads one after another until the kill; each 201 is recorded."""
        for seed in itertools.count(1000 * worker):
            if self.killed.is_set():
                return
            body = encode(tone(0.25, SR, seed=seed), SR, "WAV", "FLOAT")
            sent = self.ledger.new_upload("quick", body)
            sent.whole = True  # sent in one piece: it may be there whole even without the 201
            if not self.post_upload(sent, body):
                return
            self.acked.set()

    def post_upload(self, sent: Sent, content) -> bool:
        try:
            with self.client() as client:
                response = client.post("/api/assets", params={"name": sent.name}, content=content)
        except httpx.TransportError:
            return False  # cut off by the kill
        assert response.status_code == 201, response.text
        summary = response.json()
        assert summary["sha256"] == sent.sha256
        sent.id = summary["id"]
        return True

    def start_render(self, client: httpx.Client, asset: str, chain, tail: bool) -> RenderSent | None:
        try:
            response = client.post("/api/renders", json={"asset": asset, "chain": chain, "tail": tail})
        except httpx.TransportError:
            return None
        assert response.status_code == 202, response.text
        render = RenderSent(response.json()["id"])
        with self.ledger.lock:
            self.ledger.renders[render.id] = render
        return render

    def short_renders(self) -> None:
        """Short renders back to back, each followed until done."""
        with self.client() as client:
            while not self.killed.is_set():
                render = self.start_render(client, self.short_source, SHORT_CHAIN, tail=False)
                if render is None:
                    return
                while True:
                    try:
                        view = client.get(f"/api/renders/{render.id}").json()
                    except httpx.TransportError:
                        return
                    if view["status"] in ("done", "failed"):
                        break
                    self.killed.wait(0.02)
                assert view["status"] == "done", view
                render.result = (view["result"]["id"], view["result"]["sha256"])
                self.render_done.set()

    def run(self) -> None:
        with self.client() as client:
            long = self.start_render(client, self.long_source, "ambient", tail=True)
            assert long is not None
            self.long_render = long.id
        targets = [(self.slow_upload, (i,)) for i in range(SLOW_UPLOADS)]
        targets += [(self.quick_uploads, (i,)) for i in range(QUICK_UPLOADERS)]
        targets += [(self.short_renders, ())] * SHORT_RENDERS
        for target, args in targets:
            thread = threading.Thread(target=self.guarded, args=(target, *args), daemon=True)
            thread.start()
            self.threads.append(thread)

    def guarded(self, target, *args) -> None:
        try:
            target(*args)
        except BaseException as error:
            self.failures.append(error)

    def long_progress(self) -> tuple[str, float]:
        with self.client() as client:
            view = client.get(f"/api/renders/{self.long_render}").json()
        return view["status"], view["progress"]

    def wait_for_kill_point(self, point: str) -> None:
        """Block until the round reaches ``point``; each is a state the clients report,
        not a delay."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, progress = self.long_progress()
            running = status == "running" and progress > 0
            if point == "mid-body" and running and min(self.slow_progress) >= 20:
                return
            if point == "after-ack" and running and self.acked.wait(5):
                self.acked.clear()
                if self.acked.wait(5):  # the kill follows an acknowledgement at once
                    return
            if point == "render-writing" and status == "running" and progress >= 0.3:
                return
            if point == "render-done" and self.render_done.wait(5):
                self.render_done.clear()
                if self.render_done.wait(5):
                    return
            time.sleep(0.01)
        raise AssertionError(f"the round never reached {point}")

    def kill(self) -> None:
        kill_tree(self.server)
        self.killed.set()
        for thread in self.threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
        assert not self.failures, self.failures


def upload_source(server: Server, ledger: Ledger, seconds: float, stem: str) -> str:
    body = encode(tone(seconds, SR, seed=int(seconds)), SR, "WAV", "PCM_16")
    sent = ledger.new_upload(stem, body)
    sent.whole = True
    with server.client() as client:
        response = client.post("/api/assets", params={"name": sent.name}, content=body)
    assert response.status_code == 201, response.text
    sent.id = response.json()["id"]
    return sent.id


def all_assets(client: httpx.Client) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/assets", params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def file_sha(path: Path) -> str:
    return sha(path.read_bytes())


def check_after_restart(server: Server, ledger: Ledger) -> dict[str, int]:
    """Everything the module docstring promises; returns counts of what was seen."""
    root = server.root
    with server.client() as client:
        listed = {a["id"]: a for a in all_assets(client)}
        for asset in listed.values():  # the bytes served and the file on disk are what the row says
            data = client.get(f"/api/assets/{asset['id']}/audio").content
            assert sha(data) == asset["sha256"], asset
            folder = "uploads" if asset["kind"] == "upload" else "renders"
            assert file_sha(root / folder / asset["id"]) == asset["sha256"], asset
        renders = {rid: client.get(f"/api/renders/{rid}").json() for rid in ledger.renders}

    seen = {"acked": 0, "whole-unacked": 0, "cut-off": 0, "interrupted": 0, "done": 0}
    uploads = {a["name"]: a for a in listed.values() if a["kind"] == "upload"}
    for sent in ledger.uploads.values():
        asset = uploads.get(sent.name)
        if sent.id is not None:
            seen["acked"] += 1
            assert asset is not None and asset["id"] == sent.id, f"acknowledged upload lost: {sent}"
            assert asset["sha256"] == sent.sha256
        elif asset is not None:
            # Stored although the answer was lost: only if the whole body had been sent.
            seen["whole-unacked"] += 1
            assert sent.whole and asset["sha256"] == sent.sha256, f"half-written upload listed: {asset}"
        elif not sent.whole:
            seen["cut-off"] += 1
    assert set(uploads) <= set(ledger.uploads), "an upload no client sent is listed"

    results = set()
    for rid, sent in ledger.renders.items():
        view = renders[rid]
        assert view["status"] in ("done", "failed"), view
        if view["status"] == "done":
            seen["done"] += 1
            result = view["result"]
            assert result is not None and result["id"] in listed, view
            assert listed[result["id"]]["sha256"] == result["sha256"]
            results.add(result["id"])
            if sent.result is not None:
                assert (result["id"], result["sha256"]) == sent.result
        else:
            assert sent.result is None, f"a render seen done is now {view}"
            assert view["result"] is None and "interrupted" in view["error"], view
            seen["interrupted"] += 1
    render_assets = {aid for aid, a in listed.items() if a["kind"] == "render"}
    assert render_assets == results, f"render outputs without a done render: {render_assets - results}"

    on_disk = {
        kind: sorted(p.name for p in (root / folder).iterdir())
        for kind, folder in (("upload", "uploads"), ("render", "renders"))
    }
    for kind, names in on_disk.items():
        expected = sorted(aid for aid, a in listed.items() if a["kind"] == kind)
        assert names == expected, f"{kind} files without a row: {sorted(set(names) - set(expected))}"
    return seen


@pytest.mark.parametrize(("backend", "workers"), SETUPS)
def test_sigkill_during_uploads_and_renders_loses_and_leaves_nothing(tmp_path, backend, workers):
    env = {"FXHOST_RENDER_WORKERS": "2", "FXHOST_WORKERS": str(workers)}
    if backend == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    ledger = Ledger()
    server = start_server(tmp_path, env)
    totals: dict[str, int] = {}
    try:
        for point in KILL_POINTS:
            round_ = Round(
                server,
                ledger,
                long_source=upload_source(server, ledger, 60.0, f"long-{point}"),
                short_source=upload_source(server, ledger, 1.0, f"short-{point}"),
            )
            round_.run()
            round_.wait_for_kill_point(point)
            round_.kill()
            server = start_server(tmp_path, env)
            seen = check_after_restart(server, ledger)
            totals = {k: max(totals.get(k, 0), v) for k, v in seen.items()}
    finally:
        server.stop()
    # The crashes really cut things off: otherwise this test would show nothing.
    assert totals["cut-off"] >= SLOW_UPLOADS and totals["interrupted"] >= 1 and totals["done"] >= 1, totals
