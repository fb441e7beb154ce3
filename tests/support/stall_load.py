"""The load of finding 2: keyed clients searching while strangers hold stalled uploads open.

A stalled connection sends a request's headers (no key, a `Content-Length` under the body limit)
and the first bytes of its body, then waits; when the server answers (408 once its body timeout
passes) or closes, it opens the next one, so `stalled` of them are open throughout. The keyed
clients loop on searches, each on its own connection; every answer but a 200, and every
transport error, is an error.

`run_stall_load` measures the keyed clients alone (the unloaded phase) and beside the stalled
connections (the loaded phase), the same clients and queries for the same time. The two phases
alternate in `rounds` windows each, so a change in what else the machine runs shifts both alike
instead of landing on one phase.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

QUERIES = (
    "quick brown fox",
    "solar panels revenue",
    "a whale beside the ship",
    "what did the fox jump over",
    "quarterly growth",
)


@dataclass
class Phase:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return sum(self.errors.values()) / max(self.requests, 1)

    def percentile(self, q: int) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100)[q - 1]

    def summary(self) -> str:
        return (
            f"{self.requests} searches in {self.seconds:.0f} s, errors {dict(self.errors)} "
            f"(rate {self.error_rate:.3f}), p50 {self.percentile(50):.0f} ms, "
            f"p95 {self.percentile(95):.0f} ms"
        )


@dataclass
class Stalls:
    opened: int = 0
    connect_errors: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # status line, or "closed"


@dataclass
class StallReport:
    unloaded: Phase
    loaded: Phase
    stalls: Stalls
    stalled: int

    @property
    def p95_ratio(self) -> float:
        return self.loaded.percentile(95) / self.unloaded.percentile(95)

    def summary(self) -> str:
        return (
            f"unloaded: {self.unloaded.summary()}\n"
            f"loaded ({self.stalled} stalled connections): {self.loaded.summary()}\n"
            f"p95 loaded / unloaded: {self.p95_ratio:.2f}\n"
            f"stalled connections opened {self.stalls.opened}, connect errors "
            f"{self.stalls.connect_errors}, server answers {dict(self.stalls.answers)}"
        )


async def _stalled_connection(host: str, port: int, stop: asyncio.Event, stalls: Stalls) -> None:
    head = (
        f"POST /v1/search HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stalls.connect_errors += 1
            await asyncio.sleep(0.2)
            continue
        try:
            writer.write(head + b'{"query": "' + b"x" * 100)
            await writer.drain()
            stalls.opened += 1
            answer = asyncio.ensure_future(reader.read(4096))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({answer, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if answer.done():
                data = answer.result()
                stalls.answers[data.split(b"\r\n", 1)[0].decode() if data else "closed"] += 1
            for task in (answer, stopped):
                task.cancel()
        except OSError:
            stalls.answers["reset"] += 1
        finally:
            writer.close()


async def _keyed_client(url: str, headers: dict[str, str], offset: int, phase: Phase) -> None:
    deadline = time.monotonic() + phase.seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        i = offset
        while time.monotonic() < deadline:
            body = {"query": QUERIES[i % len(QUERIES)], "top_k": 5}
            i += 1
            start = time.perf_counter()
            try:
                r = await client.post("/v1/search", json=body)
            except httpx.HTTPError as exc:
                phase.errors[type(exc).__name__] += 1
                continue
            if r.status_code == 200:
                phase.latencies_ms.append((time.perf_counter() - start) * 1000)
            else:
                phase.errors[str(r.status_code)] += 1


async def _keyed_window(
    url: str, keys: list[dict[str, str]], clients: int, seconds: float, phase: Phase
) -> None:
    window = Phase(seconds)
    await asyncio.gather(
        *(_keyed_client(url, keys[i % len(keys)], i, window) for i in range(clients))
    )
    phase.latencies_ms += window.latencies_ms
    phase.errors.update(window.errors)


async def _run(
    url: str, keys: list[dict[str, str]], seconds: float, clients: int, stalled: int, rounds: int
) -> StallReport:
    host, port = httpx.URL(url).host, httpx.URL(url).port or 80
    window = seconds / rounds
    unloaded, loaded, stalls = Phase(seconds), Phase(seconds), Stalls()
    await _keyed_window(url, keys, clients, 2, Phase(2))  # warm-up: first calls load models
    for _ in range(rounds):
        await _keyed_window(url, keys, clients, window, unloaded)
        stop, opened = asyncio.Event(), stalls.opened + stalled
        holders = [
            asyncio.ensure_future(_stalled_connection(host, port, stop, stalls))
            for _ in range(stalled)
        ]
        deadline = time.monotonic() + 30
        while stalls.opened < opened and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await _keyed_window(url, keys, clients, window, loaded)
        stop.set()
        await asyncio.gather(*holders)
    return StallReport(unloaded, loaded, stalls, stalled)


def run_stall_load(
    url: str,
    keys: list[dict[str, str]],
    seconds: float,
    clients: int = 20,
    stalled: int = 200,
    rounds: int = 3,
) -> StallReport:
    """`clients` keyed searchers (round-robin over `keys`' headers) for `seconds` unloaded and
    `seconds` beside `stalled` stalled uploads without a key, in `rounds` alternating windows."""
    return asyncio.run(_run(url, keys, seconds, clients, stalled, rounds))
