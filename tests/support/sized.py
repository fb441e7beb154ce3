"""Documents of a given size, as users upload them, for the chunking memory test and bench: a CSV
of short rows like the probe's (7.6 MB for 300k rows), prose in paragraphs, a paged PDF, and a
JSON array (whose flattened text is one long paragraph). Deterministic for a given size."""

from __future__ import annotations

import json
import random
import textwrap

from tests.support.documents import make_csv, text_pdf
from tests.support.essays import TOPICS, essay

FORMATS = ("csv", "txt", "pdf", "json")
_CITIES = ["Oslo", "Lima", "Perth", "Quito", "Hanoi", "Accra"]


def sized_document(fmt: str, size: int) -> bytes:
    """About `size` bytes (at least) of a document in `fmt`, one of FORMATS."""
    rng = random.Random(size)
    if fmt == "csv":
        rows = [["id", "name", "city", "amount"]]
        total = 0
        while total < size:
            row = [
                str(len(rows)),
                f"n{rng.randrange(10**6)}",
                rng.choice(_CITIES),
                f"{rng.random():.2f}",
            ]
            rows.append(row)
            total += sum(map(len, row)) + 4
        return make_csv(rows)
    if fmt == "txt":
        essays, total = [], 0
        while total < size:
            essays.append(essay(f"{rng.choice(TOPICS)} {len(essays)}", words=2000))
            total += len(essays[-1]) + 2
        return "\n\n".join(essays).encode()
    if fmt == "json":
        records, total = [], 0
        while total < size:
            records.append({"id": len(records), "city": rng.choice(_CITIES), "v": rng.random()})
            total += 48
        return json.dumps(records).encode()
    if fmt == "pdf":  # pages of 60 lines of 90 characters, about 5.6 KB each
        lines = textwrap.wrap(essay("pages", words=size // 5), 90)
        return text_pdf(["\n".join(lines[n : n + 60]) for n in range(0, len(lines), 60)])
    raise ValueError(f"no sized {fmt} document")
