"""CSV: one paragraph per row, each value named by its column."""

from __future__ import annotations

import csv
import io

from ingest.formats.base import Extracted, Format, Metadata, ParseError, decode_text, detail


def _parse_csv(data: bytes, _limit: int) -> Extracted:
    """One paragraph per row, `column: value` pairs named by the header row, so a search for a
    column name and value finds the row; the first row is taken as the header."""
    source, encoding = decode_text(data, "CSV")
    try:
        dialect = csv.Sniffer().sniff(source[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(io.StringIO(source), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise ParseError(f"invalid CSV: {detail(exc)}") from exc
    if not rows:
        return Extracted(text="", metadata={"encoding": encoding})
    header, records = (
        ([" ".join(name.split()) for name in rows[0]], rows[1:]) if len(rows) > 1 else ([], rows)
    )
    lines = []
    for row in records:
        pairs = []
        for index, value in enumerate(row):
            value = " ".join(value.split())
            name = header[index] if index < len(header) else ""
            if value:
                pairs.append(f"{name}: {value}" if name else value)
        if pairs:
            lines.append(" | ".join(pairs))
    metadata: Metadata = {"encoding": encoding, "row_count": len(records)}
    return Extracted(text="\n\n".join(lines), metadata=metadata)


FORMATS = [Format("CSV", (".csv",), "text/csv", _parse_csv)]
