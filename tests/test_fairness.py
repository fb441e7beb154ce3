"""The fair scheduler's rules (`api.fairness`): who is granted the next slot.

Issue 23, finding 2: served first come, first served, one tenant's flood queued every other
tenant's searches behind it. Each test drives a real `FairScheduler` with requests that hold their
slot until the test releases them, and checks the order of the grants, never a timing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.abc import TaskGroup

from api.fairness import FairScheduler


class Requests:
    """Requests through one scheduler, each holding its slot until released; `granted` lists
    them in the order their slots were granted."""

    def __init__(self, scheduler: FairScheduler, tasks: TaskGroup) -> None:
        self.scheduler = scheduler
        self._tasks = tasks
        self._done: dict[str, anyio.Event] = {}
        self._count = 0
        self.granted: list[str] = []

    async def submit(self, tenant: str, n: int = 1, cost: float = 1.0) -> list[str]:
        """`n` requests of `tenant`, queued one after the other; their names."""
        names = []
        for _ in range(n):
            self._count += 1
            name = f"{tenant}{self._count}"
            self._done[name] = anyio.Event()
            self._tasks.start_soon(self._hold, name, tenant, cost)
            await wait_all_tasks_blocked()  # queued before the next one is submitted
            names.append(name)
        return names

    async def _hold(self, name: str, tenant: str, cost: float) -> None:
        async with self.scheduler.slot(tenant, cost):
            self.granted.append(name)
            await self._done[name].wait()

    async def release(self, name: str) -> str | None:
        """Ends `name`; the request granted its slot, if any."""
        before = len(self.granted)
        self._done[name].set()
        await wait_all_tasks_blocked()
        return self.granted[before] if len(self.granted) > before else None

    async def release_in_turn(self, count: int) -> list[str]:
        """Ends the oldest running request `count` times; the requests granted meanwhile."""
        granted = []
        for _ in range(count):
            running = next(n for n in self.granted if not self._done[n].is_set())
            if (name := await self.release(running)) is not None:
                granted.append(name)
        return granted


def scenario(slots: int, body: Callable[[Requests], Awaitable[None]]) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            requests = Requests(FairScheduler(slots), tasks)
            await body(requests)
            tasks.cancel_scope.cancel()

    anyio.run(main)


def test_a_tenant_alone_uses_every_slot() -> None:
    """Work-conserving: with no one else waiting, nothing is held back."""

    async def body(r: Requests) -> None:
        await r.submit("acme", 5)
        assert r.granted == ["acme1", "acme2", "acme3"]
        assert r.scheduler.held == {"acme": 3} and r.scheduler.waiting == {"acme": 2}
        assert await r.release("acme1") == "acme4"

    scenario(3, body)


@pytest.mark.parametrize("slots", [1, 2, 8])
def test_a_request_queued_behind_a_flood_is_served_next(slots: int) -> None:
    """Every slot held by acme and many acme requests queued: globex's request, queued after
    them, gets the next slot that frees; first come, first served it would get the 21st."""

    async def body(r: Requests) -> None:
        await r.submit("acme", slots + 20)
        (victim,) = await r.submit("globex")
        assert r.scheduler.waiting == {"acme": 20, "globex": 1}
        assert await r.release_in_turn(2) == [victim, f"acme{slots + 1}"]

    scenario(slots, body)


def test_two_busy_tenants_take_turns() -> None:
    async def body(r: Requests) -> None:
        await r.submit("acme", 10)
        await r.submit("globex", 10)
        order = await r.release_in_turn(8)
        assert [name.rstrip("0123456789") for name in order] == ["globex", "acme"] * 4

    scenario(2, body)


def test_an_expensive_request_counts_for_more() -> None:
    """acme's requests cost three times globex's: both busy, globex is granted three for one."""

    async def body(r: Requests) -> None:
        await r.submit("acme", 10, cost=3.0)
        await r.submit("globex", 10, cost=1.0)
        order = await r.release_in_turn(8)
        assert [name.rstrip("0123456789") for name in order] == (["globex"] * 3 + ["acme"]) * 2

    scenario(1, body)


def test_a_tenant_holds_at_most_its_share_while_another_waits() -> None:
    """globex's requests cost ten times acme's, but once it waits it still gets half the slots
    (least service alone would give cheap acme every slot that frees): a tenant's cost orders
    its grants, its share bounds what it holds."""

    async def body(r: Requests) -> None:
        await r.submit("acme", 10, cost=1.0)
        await r.submit("globex", 10, cost=10.0)
        await r.release_in_turn(6)
        assert r.scheduler.held == {"acme": 2, "globex": 2}

    scenario(4, body)


def test_an_idle_tenant_banks_no_credit() -> None:
    """globex was served alone for a long time, then acme arrives: they alternate from there,
    instead of acme catching up on the service it missed while it was away."""

    async def body(r: Requests) -> None:
        await r.submit("globex", 40)
        await r.release_in_turn(30)
        await r.submit("acme", 5)
        order = await r.release_in_turn(6)
        assert [name.rstrip("0123456789") for name in order] == ["acme", "globex"] * 3

    scenario(1, body)


def test_a_request_cancelled_while_queued_or_running_frees_its_place() -> None:
    async def body(r: Requests) -> None:
        scheduler = r.scheduler
        await r.submit("acme")
        with anyio.move_on_after(0):  # cancelled while it waits for the only slot
            async with scheduler.slot("globex", 1.0):
                pytest.fail("granted while acme holds the only slot")
        assert scheduler.waiting == {}
        await r.release("acme1")
        assert scheduler.held == {}
        with anyio.CancelScope() as scope:  # cancelled once granted, before it runs
            scope.cancel()
            async with scheduler.slot("globex", 1.0):
                pytest.fail("ran in a cancelled scope")
        assert scheduler.held == {} and scheduler.waiting == {}
        assert await scheduler.run("globex", 1.0, sum, [1, 2]) == 3

    scenario(1, body)
