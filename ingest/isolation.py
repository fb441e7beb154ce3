"""Parse and chunk documents in separate processes, each document within a time and memory budget.

A hostile file can make a parser spin for minutes (a PDF whose pages share one huge content
stream) or allocate gigabytes, and a large text can take the chunker long (a 7.6 MB CSV held a
worker for minutes). In the process that serves searches, pure-Python work would also hold the GIL
all that time and starve every tenant's requests. So parsing and chunking run in a bounded pool of
long-lived child processes: a document that overruns its time budget gets its process killed (and
replaced) and is quarantined with the reason; one that overruns the memory limit fails inside its
process with a `MemoryError`. The children run at a lower CPU priority (`RAG_PARSE_NICENESS`) than
the API and workers. A child chunks with the tokenizer it was sent (never the model's weights),
kept for the documents after.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ingest.parsers import ParsedDocument, ParseError, parse_document

if TYPE_CHECKING:  # a process that only parses never imports the chunker's libraries
    from ingest.chunking import ChunkedDocument, Chunker, ChunkerConfig

log = logging.getLogger(__name__)
_WATCHDOG_SECONDS = 1.0
# What a terminal's Ctrl-C and a service manager's stop send to a whole process group.
_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_START_TIMEOUT_SECONDS = 120  # importing the parser libraries, on a loaded machine
# A process keeps every chunker it was sent (the served generation's, a rebuild's); one that would
# hold more is replaced, so a long life of configuration changes does not add up.
_CHUNKERS_PER_PROCESS = 4


@dataclass(frozen=True)
class ParseBudget:
    """What parsing and chunking one document may cost, together."""

    timeout_seconds: float
    max_expanded_bytes: int  # decompressed Office archive members and PDF page content
    memory_mb: int | None  # address space of a parser process; None: unbounded
    niceness: int = 0  # added to the parser processes' nice value: the API goes first


def _exit_with_parent(parent: int) -> None:
    """A parser process must not outlive its parent, even a SIGKILLed one. An idle parser sees its
    request pipe close; a busy one is stopped by this watchdog. (PR_SET_PDEATHSIG would fire when
    the parent *thread* that started the process ends, killing a parser another thread uses.)"""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCHDOG_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def serve(requests_fd: int, replies_fd: int, parent: int, budget_json: str) -> None:
    """A parser process: answers requests until its request pipe closes. `("chunker", config)`
    installs a chunker; `(key, data, digest)` parses a document and, unless `digest` is None,
    chunks it with that chunker."""
    budget = ParseBudget(**json.loads(budget_json))
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    _exit_with_parent(parent)
    # Ctrl-C and SIGTERM reach the whole process group; stopping is the parent's decision, so a
    # warm shutdown lets the documents being parsed finish rather than fail.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)  # blocked since before the fork
    os.nice(budget.niceness)
    if budget.memory_mb is not None:
        limit = budget.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    chunkers: dict[str, Chunker] = {}
    replies.send(("ready", None))  # the time budget starts once the parsers are imported
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return
        if request[0] == "chunker":
            replies.send(_install(request[1], chunkers, budget))
            continue
        key, data, digest = request
        del request
        reply = _read(key, data, None if digest is None else chunkers[digest], budget, replies)
        del data
        replies.send(reply)


def _install(
    config: ChunkerConfig, chunkers: dict[str, Chunker], budget: ParseBudget
) -> tuple[str, object]:
    """Build the chunker and load what a long paragraph needs (llama-index loads NLTK, and scipy
    with it, on first use: seconds and 170 MB), so no document's budget pays for it."""
    from ingest.chunking import Chunker

    try:
        chunker = Chunker.from_config(config)
        chunker.warm_up()
    except MemoryError:
        return "error", (
            f"the chunker's libraries need more than the {budget.memory_mb} MB a parser process "
            "may use (RAG_PARSE_MEMORY_MB)"
        )
    chunkers[config.digest] = chunker
    return "ready", None


def _read(
    key: str, data: bytes, chunker: Chunker | None, budget: ParseBudget, replies: Connection
) -> tuple[str, object]:
    """The reply to one document: ("ok", the parsed or chunked document) or ("error", reason)."""
    phase = "parsing"
    try:
        parsed = parse_document(key, data, max_expanded_bytes=budget.max_expanded_bytes)
        if chunker is None:
            return "ok", parsed
        phase = "chunking"
        replies.send(("chunking", None))  # so that a timeout names the phase it cut short
        return "ok", chunker.chunk_document(parsed)
    except ParseError as exc:
        return "error", exc.reason
    except MemoryError:
        return "error", (
            f"{phase} needed more than the {budget.memory_mb} MB memory budget "
            "(RAG_PARSE_MEMORY_MB)"
        )
    except Exception as exc:  # the parsers turn theirs into ParseError; this is the chunker's
        log.warning("unexpected error chunking %r", key, exc_info=True)
        return "error", f"could not chunk the document ({type(exc).__name__}: {str(exc)[:200]})"


class ParserStartError(RuntimeError):
    """A parser process that did not start: the machine's trouble (no memory, a signal), not the
    document's, which is worth another try rather than a quarantine."""


_CHILD_CODE = (
    "import sys; from ingest.isolation import serve; serve(*map(int, sys.argv[1:4]), sys.argv[4])"
)


class _ParserProcess:
    """A child interpreter started with its own command line, not by multiprocessing: spawning
    through multiprocessing would re-run the parent's main script, and forking a process with
    model threads is unsafe. Requests and replies are pickled over two pipes."""

    def __init__(self, budget: ParseBudget) -> None:
        child_requests, self._requests_fd = os.pipe()
        self._replies_fd, child_replies = os.pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)  # where `ingest` is importable from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        budget_json = json.dumps(dataclasses.asdict(budget))
        # Blocked from before the fork until `serve` ignores them: the child leaves its parent's
        # process group only once forked, and a group's signal sent in between stays pending and
        # would kill it (SIG_DFL) as soon as it was unblocked, before its imports were done.
        parent_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD_CODE,
                    str(child_requests),
                    str(child_replies),
                    str(os.getpid()),
                    budget_json,
                ],
                pass_fds=(child_requests, child_replies),
                stdin=subprocess.DEVNULL,
                env=env,
                # A group of its own: a terminal's Ctrl-C and a service manager's SIGTERM reach the
                # parent's group, and stopping is the parent's decision. `serve` ignores them too,
                # but only once its imports are done: a parser starting then died of them.
                process_group=0,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, parent_mask)
            os.close(child_requests)
            os.close(child_replies)
        self.requests = Connection(self._requests_fd, readable=False)
        self.replies = Connection(self._replies_fd, writable=False)
        self.timed_out = False
        self.phase = "parsing"  # of the document it is reading, for the failure's reason
        self.chunkers: set[str] = set()  # digests of the chunkers it was sent
        if self._reply() != ("ready", None):
            self.stop()
            raise ParserStartError(
                f"a parser process did not start (exit code {self.process.returncode})"
            )

    def install(self, chunker: Chunker) -> None:
        """Send `chunker` unless the process has it: the tokenizer's JSON is half a megabyte.
        Building it there is setup, like importing the parsers, outside any document's budget."""
        config = chunker.config
        if config.digest in self.chunkers:
            return
        with contextlib.suppress(OSError):  # a process that died says nothing: reply is None
            self.requests.send(("chunker", config))
        reply = self._reply()
        if reply != ("ready", None):
            reason = reply[1] if reply else f"exit code {self.process.poll()}"
            raise RuntimeError(f"a parser process could not take the chunker: {reason}")
        self.chunkers.add(config.digest)

    def has_room_for(self, chunker: Chunker | None) -> bool:
        """False when taking `chunker` would make it hold more chunkers than a process may."""
        if chunker is None or chunker.config.digest in self.chunkers:
            return True
        return len(self.chunkers) < _CHUNKERS_PER_PROCESS

    def _reply(self) -> tuple[str, object] | None:
        try:
            return self.replies.recv() if self.replies.poll(_START_TIMEOUT_SECONDS) else None
        except (EOFError, OSError):
            return None

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        self.requests.close()
        self.replies.close()
        self.kill()


class ParserPool:
    """At most `processes` documents parse at once; callers beyond that wait for a free process.

    Processes start on first use and are reused across documents; one that overran its budget or
    died is replaced.
    """

    def __init__(self, processes: int, budget: ParseBudget) -> None:
        if processes < 1:
            raise ValueError("a parser pool needs at least one process")
        self.budget = budget
        self._idle: queue.Queue[_ParserProcess | None] = queue.Queue()
        for _ in range(processes):
            self._idle.put(None)  # a slot whose process has not started yet
        self._live: set[_ParserProcess] = set()
        self._lock = threading.Lock()
        self._closed = False

    def parse(self, key: str, data: bytes) -> ParsedDocument:
        """The parsed document, or ParseError with why it was refused or could not be read."""
        parsed = self._request(key, data, None)
        assert isinstance(parsed, ParsedDocument)
        return parsed

    def read(self, key: str, data: bytes, chunker: Chunker) -> ChunkedDocument:
        """The document parsed and chunked within one budget, or ParseError with why not."""
        return cast("ChunkedDocument", self._request(key, data, chunker))

    def _request(self, key: str, data: bytes, chunker: Chunker | None) -> object:
        worker = self._idle.get()
        try:
            if worker is None or not worker.is_alive() or not worker.has_room_for(chunker):
                worker = self._start(worker)
            if chunker is not None:
                worker.install(chunker)
            outcome = self._ask(worker, key, data, chunker)
        except BaseException:
            self._retire(worker)
            self._idle.put(None)
            raise
        if outcome is None:  # the process is gone or was killed: its slot gets a fresh one
            self._retire(worker)
            self._idle.put(None)
            raise ParseError(self._failure(worker))
        self._idle.put(worker)
        status, value = outcome
        if status == "error":
            raise ParseError(str(value))
        return value

    def _ask(
        self, worker: _ParserProcess, key: str, data: bytes, chunker: Chunker | None
    ) -> tuple[str, object] | None:
        """The process's reply, or None if it died or overran the time budget (then killed).
        One deadline covers parsing and chunking; the process says when it starts chunking."""
        worker.phase = "parsing"
        digest = None if chunker is None else chunker.config.digest
        try:
            worker.requests.send((key, data, digest))
            deadline = time.monotonic() + self.budget.timeout_seconds
            while True:
                if not worker.replies.poll(max(0.0, deadline - time.monotonic())):
                    worker.timed_out = True
                    worker.kill()
                    return None
                status, value = worker.replies.recv()
                if status != "chunking":
                    return status, value
                worker.phase = "chunking"
        except (EOFError, OSError):
            return None

    def _failure(self, worker: _ParserProcess) -> str:
        if worker.timed_out:
            return (
                f"{worker.phase} took longer than the {self.budget.timeout_seconds:g} s budget "
                "per document (RAG_PARSE_TIMEOUT_SECONDS)"
            )
        worker.kill()
        return (
            f"the parser process died while {worker.phase} (exit code {worker.process.returncode})"
        )

    def _start(self, old: _ParserProcess | None) -> _ParserProcess:
        self._retire(old)
        if self._closed:
            raise RuntimeError("the parser pool is closed")
        worker = _ParserProcess(self.budget)  # outside the lock: other slots go on meanwhile
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.stop()
            raise RuntimeError("the parser pool is closed")
        return worker

    def _retire(self, worker: _ParserProcess | None) -> None:
        if worker is None:
            return
        with self._lock:
            self._live.discard(worker)
        worker.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live, self._live = self._live, set()
        for worker in live:
            worker.stop()


_pools: dict[tuple[int, ParseBudget], ParserPool] = {}
_pools_lock = threading.Lock()


def shared_pool(processes: int, budget: ParseBudget) -> ParserPool:
    """The process-wide pool for these limits: every ingestion in a process shares its parsers,
    so the bound on concurrent parsing holds however many ingestions run."""
    with _pools_lock:
        pool = _pools.get((processes, budget))
        if pool is None:
            pool = _pools[(processes, budget)] = ParserPool(processes, budget)
        return pool


@atexit.register
def close_shared_pools() -> None:
    """Stop every shared pool's parsers (at exit, or sooner by a process that is done parsing)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
