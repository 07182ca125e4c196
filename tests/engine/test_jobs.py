"""The whole-file job gate: at most ``limit`` jobs in threads at once, the rest in line
first come first served, refused with Busy past the wait; a slot is freed when the
job's thread ends, even if its caller went away. Jobs here block on events the test
sets, so nothing depends on timing."""

import asyncio
import threading

import pytest
from fxhost.engine.jobs import Busy, JobGate


async def started(gate: JobGate, count: int) -> None:
    while gate.running + gate.waiting < count:
        await asyncio.sleep(0.001)


def test_at_most_limit_run_and_the_rest_wait_in_order():
    async def main():
        gate = JobGate(2, 60)
        release = [threading.Event() for _ in range(4)]
        threads: list[str] = []
        order: list[int] = []

        def job(i: int):
            threads.append(threading.current_thread().name)
            release[i].wait()
            order.append(i)
            return i

        tasks = [asyncio.create_task(gate.run(lambda i=i: job(i))) for i in range(4)]
        await started(gate, 4)
        assert (gate.running, gate.waiting) == (2, 2)
        release[2].set()  # in line: cannot finish before it gets a slot
        release[1].set()
        assert await tasks[1] == 1
        assert await tasks[2] == 2  # the first in line got the slot
        release[0].set()
        release[3].set()
        assert [await t for t in tasks] == [0, 1, 2, 3]
        assert gate.peak == 2 and (gate.running, gate.waiting) == (0, 0)
        assert order.index(1) < order.index(2)
        assert all(name.startswith("fxhost-job") for name in threads)  # never on the event loop
        gate.close()

    asyncio.run(main())


def test_past_the_wait_the_job_is_refused():
    async def main():
        hold = threading.Event()
        for wait in (0, 0.05):
            gate = JobGate(1, wait)
            running = asyncio.create_task(gate.run(hold.wait))
            await started(gate, 1)
            with pytest.raises(Busy) as refused:
                await gate.run(lambda: None)
            assert refused.value.retry_after >= 1 and "busy" in str(refused.value)
            assert gate.waiting == 0  # it left the line
            hold.set()
            await running
            assert await gate.run(lambda: "free again") == "free again"
            hold.clear()
            gate.close()

    asyncio.run(main())


def test_a_caller_that_goes_away_frees_its_slot_only_when_its_thread_ends():
    async def main():
        gate = JobGate(1, 60)
        hold, ended = threading.Event(), threading.Event()

        def job():
            hold.wait()
            ended.set()

        first = asyncio.create_task(gate.run(job))
        await started(gate, 1)
        waiter = asyncio.create_task(gate.run(lambda: "waited"))
        await started(gate, 2)
        first.cancel()  # the client disconnects: its thread still runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert gate.running == 1 and gate.waiting == 1 and not waiter.done()
        third = asyncio.create_task(gate.run(lambda: "third"))
        await started(gate, 3)
        third.cancel()  # one in line gives up: it leaves the line
        with pytest.raises(asyncio.CancelledError):
            await third
        assert gate.waiting == 1
        hold.set()
        assert await waiter == "waited"
        assert ended.is_set() and gate.running == 0 and gate.peak == 1
        gate.close()

    asyncio.run(main())
