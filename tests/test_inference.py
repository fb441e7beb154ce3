"""Model calls run on one long-lived thread per kind of call, whichever thread asks."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from core.embedding import Embedder
from core.inference import InferenceThread


def test_calls_from_many_threads_run_on_one_thread() -> None:
    inference = InferenceThread("t")
    with ThreadPoolExecutor(8) as pool:
        idents = set(pool.map(lambda _: inference.run(threading.get_ident), range(64)))
    assert len(idents) == 1 and threading.get_ident() not in idents


def test_errors_reach_the_caller() -> None:
    def boom() -> None:
        raise ValueError("inside")

    inference = InferenceThread("t")
    try:
        inference.run(boom)
    except ValueError as exc:
        assert str(exc) == "inside"
    else:
        raise AssertionError("the error was swallowed")
    assert inference.run(lambda: 42) == 42  # the thread survives it


def test_a_forked_child_gets_its_own_thread() -> None:
    """A prefork worker inherits the object but not the thread; without a restart it would hang."""
    inference = InferenceThread("t")
    inference.run(lambda: None)
    pid = os.fork()
    if pid == 0:
        ok = inference.run(lambda: os.getpid()) == os.getpid()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_embedder_uses_separate_threads_for_queries_and_documents(embedder: Embedder) -> None:
    seen: dict[str, set[int]] = {"query": set(), "documents": set()}
    encode = embedder._encode

    def spy(texts: list[str]):  # records the thread, then runs the real model
        kind = "documents" if texts[0].startswith("doc") else "query"
        seen[kind].add(threading.get_ident())
        return encode(texts)

    embedder._encode = spy  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: embedder.embed_query(f"query {i}"), range(8)))
            list(pool.map(lambda i: embedder.embed_documents([f"doc {i}"]), range(8)))
    finally:
        del embedder._encode
    assert len(seen["query"]) == 1 and len(seen["documents"]) == 1
    assert seen["query"] != seen["documents"]
