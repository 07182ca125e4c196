"""The storage interface as a render node uses it, on both implementations: ``put`` a
local file as an object, ``fetch`` an object as a local file (a scratch copy for S3,
removed after), read a range, delete; S3 against moto's server (a real S3 API)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from fxhost.store.storage.local import LocalStorage
from fxhost.store.storage.objects import ScratchBudget, Storage
from fxhost.store.storage.options import S3Options
from fxhost.store.storage.s3 import S3Storage
from s3kit import ACCESS_KEY, REGION, SECRET_KEY


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage({"upload": tmp_path / "uploads", "render": tmp_path / "renders"})
    moto = request.getfixturevalue("moto_s3")
    options = S3Options(
        bucket=moto.new_bucket(),
        prefix="node",
        endpoint_url=moto.endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        scratch_dir=tmp_path / "scratch",
    )
    return S3Storage(options)


def test_put_fetch_read_delete(storage, tmp_path):
    data = bytes(range(256)) * 4000  # 1 MB

    async def scenario() -> None:
        await storage.start()
        elsewhere = tmp_path / "node-output.wav"  # a node's result, outside the store
        elsewhere.write_bytes(data)
        await storage.put(elsewhere, "renders/abc")
        assert not elsewhere.exists()  # put takes the file
        assert await storage.exists("renders/abc")
        async with storage.fetch("renders/abc") as local:
            assert local.read_bytes() == data
        if isinstance(storage, S3Storage):
            assert not local.exists()  # the scratch copy is gone
            assert list((tmp_path / "scratch").iterdir()) == []
        chunks = await storage.open_read("renders/abc", 1000, 200_999)
        assert b"".join(await asyncio.to_thread(list, chunks)) == data[1000:201_000]
        await storage.delete("renders/abc")
        await storage.delete("renders/abc")  # gone already: no error
        assert not await storage.exists("renders/abc")
        with pytest.raises(FileNotFoundError):
            async with storage.fetch("renders/abc"):
                pass
        with pytest.raises(FileNotFoundError):
            await storage.open_read("renders/abc", 0, 10)

    asyncio.run(scenario())


def test_a_fetch_cancelled_while_copying_leaves_no_scratch_copy(moto_s3, tmp_path):
    """A render cancelled while its input is fetched: the copy, which its thread finishes
    anyway, is removed, and its bytes no longer count against the scratch budget."""
    options = S3Options(
        bucket=moto_s3.new_bucket(),
        endpoint_url=moto_s3.endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        scratch_dir=tmp_path / "scratch",
    )
    storage = S3Storage(options)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\x01" * (48 << 20))

    async def scenario() -> None:
        await storage.start()
        await storage.put(big, "uploads/big")
        held = asyncio.Event()

        async def render() -> None:
            async with storage.fetch("uploads/big"):
                held.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(render())
        # Cancelled as soon as the copy has begun to arrive.
        while not any(options.scratch_dir.iterdir()) and not held.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert list(options.scratch_dir.iterdir()) == []
        assert storage.budget.held == 0

    asyncio.run(scenario())


def test_a_failure_while_recording_removes_the_object(storage, tmp_path):
    async def scenario() -> None:
        await storage.start()
        temp = storage.scratch_path("upload")
        temp.write_bytes(b"audio")
        with pytest.raises(RuntimeError, match="the row"):
            async with storage.placed(temp, "uploads/x1"):
                assert await storage.exists("uploads/x1")  # the object is in before the row
                raise RuntimeError("the row could not be inserted")
        assert not await storage.exists("uploads/x1")
        assert not temp.exists()

    asyncio.run(scenario())


def test_the_storage_pickles_for_a_worker_process(storage, tmp_path):
    import pickle

    async def scenario() -> None:
        await storage.start()
        source = tmp_path / "in.bin"
        source.write_bytes(b"impulse")
        await storage.put(source, "uploads/ir")

    asyncio.run(scenario())
    copy = pickle.loads(pickle.dumps(storage))
    with copy.fetch_blocking("uploads/ir") as local:
        assert Path(local).read_bytes() == b"impulse"


def test_scratch_copies_wait_for_room_unless_alone():
    budget = ScratchBudget(100)
    order: list[str] = []
    with budget.taken(60):
        second = threading.Thread(target=lambda: _take(budget, 60, order))
        second.start()
        second.join(0.3)
        assert second.is_alive() and order == []  # 60 + 60 > 100: it waits
        order.append("first done")
    second.join(10)
    assert order == ["first done", "second"]
    with budget.taken(500):  # alone, larger than the budget: still goes
        assert budget.held == 500
    assert budget.held == 0


def _take(budget: ScratchBudget, size: int, order: list[str]) -> None:
    with budget.taken(size):
        order.append("second")
