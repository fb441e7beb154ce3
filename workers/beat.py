"""What beat runs: the reconciling scan of the whole bucket, every `scan_interval_seconds`, the
index's optimisation every `index_optimize_interval_seconds`, and the nightly evaluation when a
dataset is configured."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from core.settings import Settings
from workers import names


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.workers.scan_interval_seconds
    schedule: dict[str, dict[str, Any]] = {
        "scan-bucket": {
            "task": names.SCAN_BUCKET,
            "schedule": interval,
            # A scan nobody picked up in time is superseded by the next one; don't pile them up.
            "options": {"queue": settings.workers.celery_scan_queue, "expires": interval},
        },
        "optimize-index": {
            "task": names.OPTIMIZE_INDEX,
            "schedule": settings.index.optimize_interval_seconds,
            "options": {
                "queue": settings.workers.celery_scan_queue,
                "expires": settings.index.optimize_interval_seconds,
            },
        },
    }
    nightly = crontab(hour=settings.eval.nightly_hour, minute=settings.eval.nightly_minute)
    # Every tenant with a golden set; a tenant without one costs nothing.
    schedule["nightly-tenant-eval"] = {
        "task": names.EVAL_TENANTS,
        "schedule": nightly,
        "options": {"queue": settings.workers.celery_scan_queue},
    }
    if settings.eval.dataset is not None:
        schedule["nightly-eval"] = {
            "task": names.EVAL_NIGHTLY,
            "schedule": crontab(
                hour=settings.eval.nightly_hour, minute=settings.eval.nightly_minute
            ),
            # Every worker consumes the scan queue; scans wait behind the nightly run.
            "options": {"queue": settings.workers.celery_scan_queue},
        }
    return schedule
