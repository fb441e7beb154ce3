"""Fair shares of the API's blocking work: which waiting request runs next.

Served first come, first served, one tenant's flood queues every other tenant behind it (issue 23,
finding 2: 48 clients of one tenant asking for reranked searches took another tenant's plain
search from 14 ms to 49.6 s). A `FairScheduler` grants its `slots` instead:

- a tenant alone uses every slot: nothing is held back while no one else waits;
- the next free slot goes to the waiting tenant with the least service, the summed cost of the
  requests it was granted (first come, first served within a tenant). A tenant that arrives with
  nothing in the scheduler has its service raised to where the latest granted request started
  (start-time fair queueing): it banks no credit while idle, and arriving behind a busy tenant's
  queue it is served before that tenant's next request;
- while another tenant waits, a tenant that already holds its share (the slots divided among the
  tenants with requests in the scheduler) gets no more;
- a request's cost is what it asks of the resource behind the slots, so of two busy tenants the
  one asking for expensive work is granted fewer requests, not the same number.

Waiting happens on the event loop, so a queued request holds no thread; a granted one runs in a
thread of the scheduler's own, never behind the default thread pool's other work. Slots are not
taken back from a running request: a request that arrives while every slot is busy waits for the
next one to free, and is the next one served.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


@dataclass(eq=False)
class _Waiter:
    tenant: str
    cost: float
    arrival: int  # orders a tenant's ties with another's: first come, first served
    granted: anyio.Event = field(default_factory=anyio.Event)


class FairScheduler:
    """Grants `slots` slots to waiting requests, fairly across tenants; see the module's rules.

    Used from the event loop only (it keeps no lock); `run` sends the work to its threads.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a fair scheduler needs at least one slot, not {slots}")
        self.slots = slots
        self._held: Counter[str] = Counter()
        self._queues: dict[str, deque[_Waiter]] = {}
        # Per tenant (of the keys that called: a bounded set), kept while it is idle too.
        self._service: dict[str, float] = {}
        self._started = 0.0  # the service the latest granted request started at
        self._arrivals = itertools.count()
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def held(self) -> dict[str, int]:
        """Slots held per tenant."""
        return dict(self._held)

    @property
    def waiting(self) -> dict[str, int]:
        """Requests queued per tenant."""
        return {tenant: len(queue) for tenant, queue in self._queues.items()}

    async def run(self, tenant: str, cost: float, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in one of the scheduler's threads once `tenant` is granted a slot."""
        async with self.slot(tenant, cost):
            if self._limiter is None:  # made on first use, on the event loop it belongs to
                self._limiter = anyio.CapacityLimiter(self.slots)
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    @asynccontextmanager
    async def slot(self, tenant: str, cost: float) -> AsyncIterator[None]:
        """Holds one slot for `tenant`, charged `cost`, once it is granted."""
        await self._acquire(tenant, cost)
        try:
            yield
        finally:
            self._release(tenant)

    async def _acquire(self, tenant: str, cost: float) -> None:
        if tenant not in self._held and tenant not in self._queues:
            self._service[tenant] = max(self._service.get(tenant, 0.0), self._started)
        waiter = _Waiter(tenant, cost, next(self._arrivals))
        self._queues.setdefault(tenant, deque()).append(waiter)
        self._grant()
        try:
            await waiter.granted.wait()
        except BaseException:  # cancelled while waiting, or just after the grant
            if waiter.granted.is_set():
                self._release(tenant)
            else:
                self._withdraw(waiter)
            raise

    def _grant(self) -> None:
        while self._queues and self._held.total() < self.slots:
            tenant = self._next_tenant()
            queue = self._queues[tenant]
            waiter = queue.popleft()
            if not queue:
                del self._queues[tenant]
            self._held[tenant] += 1
            self._started = max(self._started, self._service[tenant])
            self._service[tenant] += waiter.cost
            waiter.granted.set()

    def _next_tenant(self) -> str:
        share = math.ceil(self.slots / len(self._held.keys() | self._queues.keys()))
        under = [t for t in self._queues if self._held[t] < share]
        return min(
            under or self._queues,
            key=lambda t: (self._service[t], self._held[t], self._queues[t][0].arrival),
        )

    def _release(self, tenant: str) -> None:
        self._held[tenant] -= 1
        if not self._held[tenant]:
            del self._held[tenant]
        self._grant()

    def _withdraw(self, waiter: _Waiter) -> None:
        queue = self._queues[waiter.tenant]
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.tenant]
