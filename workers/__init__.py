"""Celery workers that keep the index in step with the watched bucket.

`celery -A workers.app worker` finds the app in `workers.app`; `rag up` runs the same app inside
one process. Nothing is imported here, so a command that needs one module of this package (say
`rag worker`'s command line) does not build the Celery app.
"""
