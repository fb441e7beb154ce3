"""How much memory a piece of work takes: the rise of this process's resident set (Linux).

The tokenizer allocates in Rust, where tracemalloc does not look, so the kernel's high-water mark
is the measure: reset it (`/proc/self/clear_refs`), do the work, read how far it rose. Memory the
process freed but kept would serve the work without raising the mark, so it is handed back to the
system first (glibc's `malloc_trim`).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_growth(work: Callable[[], T]) -> tuple[T, int]:
    """`work()`'s result, and how many bytes its peak resident set rose above where it began."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here
    before = _status_kb("VmRSS")
    result = work()
    return result, (_status_kb("VmHWM") - before) * 1024
