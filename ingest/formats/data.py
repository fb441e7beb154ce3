"""JSON, flattened to `path.to.key: value` lines."""

from __future__ import annotations

import json

from ingest.formats.base import (
    Extracted,
    Format,
    Metadata,
    ParseError,
    clean_title,
    decode_text,
    detail,
)


def _json_scalar(value: object) -> str:
    """JSON spelling for literals so `null`/`true` read the same as in the source."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _flatten_json(value: object) -> list[str]:
    """`path.to.key: value` lines let keyword search match both field names and values.

    Iterative so that nesting depth is bounded only by what json.loads accepted.
    """
    lines: list[str] = []
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        path, node = pending.pop()
        if isinstance(node, dict):
            items = [(str(key), child) for key, child in node.items()]
        elif isinstance(node, list):
            items = [(str(index), child) for index, child in enumerate(node)]
        else:
            rendered = _json_scalar(node)
            lines.append(f"{path}: {rendered}" if path else rendered)
            continue
        pending.extend(
            (f"{path}.{name}" if path else name, child) for name, child in reversed(items)
        )
    return lines


def _json_type_name(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def _parse_json(data: bytes, _limit: int) -> Extracted:
    source, encoding = decode_text(data, "JSON")
    try:
        value = json.loads(source)
    except RecursionError as exc:
        raise ParseError("JSON too deeply nested") from exc
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {detail(exc)}") from exc
    title = None
    if isinstance(value, dict):
        title = clean_title(value.get("title")) or clean_title(value.get("name"))
    metadata: Metadata = {"encoding": encoding, "top_level_type": _json_type_name(value)}
    return Extracted(text="\n".join(_flatten_json(value)).strip(), title=title, metadata=metadata)


FORMATS = [Format("JSON", (".json",), "application/json", _parse_json)]
