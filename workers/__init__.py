"""Celery workers that keep the index in step with the watched bucket.

`celery -A workers worker` finds the app here; `rag up` runs the same app inside one process.
"""

from workers.app import app

__all__ = ["app"]
