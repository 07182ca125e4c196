"""The links' signature and secret, below HTTP: a signature covers each of action,
resource, tenant and expiry; processes that start at once on a new database agree on one
secret (SQLite, and PostgreSQL when ``FXHOST_TEST_DATABASE_URL`` is set)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from fxhost.store.db import migrate_database
from fxhost.store.links import LinkSigner
from restkit import BACKENDS, fresh_postgres

LINK = ("download", "0123456789abcdef0123456789abcdef", "key-0011223344556677", 1_900_000_000)


def test_a_signature_covers_every_part_of_a_link():
    signer = LinkSigner(b"k" * 32)
    sig = signer.sign(*LINK)
    assert len(sig) == 43 and signer.verify(sig, *LINK)
    for i, other in enumerate(["events", "0123456789abcdef0123456789abcdee", "", LINK[3] + 1]):
        changed = list(LINK)
        changed[i] = other
        assert not signer.verify(sig, *changed), changed
    assert not LinkSigner(b"j" * 32).verify(sig, *LINK)  # another secret
    # Fields are separated: moving a character from the id to the tenant changes it.
    assert not signer.verify(sig, LINK[0], LINK[1][:-1], LINK[1][-1] + LINK[2], LINK[3])


RACER = """
import asyncio, sys, time
from pathlib import Path
from tortoise import Tortoise
from fxhost.store.db import tortoise_config
from fxhost.store.db.models import ServerSecret
from fxhost.store.links import link_secret

async def main(url, barrier, n):
    await Tortoise.init(config=tortoise_config(url))
    assert not await ServerSecret.exists()  # connected, and no secret yet
    (barrier / f"ready-{n}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.001)
    print(await link_secret(None))
    await Tortoise.close_connections()

asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
"""
RACERS = 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_starting_at_once_agree_on_one_secret(backend, tmp_path):
    url = fresh_postgres() if backend == "postgres" else f"sqlite://{tmp_path / 'race.db'}"
    asyncio.run(migrate_database(url))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(barrier), str(n)], stdout=subprocess.PIPE, text=True
        )
        for n in range(RACERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < RACERS:  # every one connected, none has a secret
            assert time.monotonic() < deadline and all(p.poll() is None for p in racers)
            time.sleep(0.01)
        (barrier / "go").touch()  # then all of them make one at once
        secrets = set()
        for proc in racers:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            secrets.add(out.strip())
    finally:
        for proc in racers:
            proc.kill()
    assert len(secrets) == 1 and len(secrets.pop()) >= 32
