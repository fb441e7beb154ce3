"""What beat runs: the reconciling scan of the whole bucket, every `scan_interval_seconds`."""

from __future__ import annotations

from typing import Any

from core.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.scan_interval_seconds
    return {
        "scan-bucket": {
            "task": "rag.scan_bucket",
            "schedule": interval,
            # A scan nobody picked up in time is superseded by the next one; don't pile them up.
            "options": {"queue": settings.celery_scan_queue, "expires": interval},
        }
    }
