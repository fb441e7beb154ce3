"""A document's current listing entry, read fresh: a task trusts the bucket, not its message."""

from __future__ import annotations

from ingest.bucket import Bucket, ObjectInfo, sidecar_for


def current(bucket: Bucket, key: str) -> tuple[ObjectInfo | None, dict[str, ObjectInfo]]:
    """The document's entry and, keyed as a scan lists them, its sidecar's (if any)."""
    obj = bucket.stat(key)
    if obj is None:
        return None, {}
    sidecar = bucket.stat(sidecar_for(key))
    return obj, {sidecar.key: sidecar} if sidecar else {}
