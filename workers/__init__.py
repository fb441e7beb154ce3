"""Celery workers that keep the index in step with the watched bucket.

The Celery app is made from the settings by `workers.app.create_app`, when a command asks for it:
`rag worker`, `rag up` (the same app inside one process) and `celery -A workers.main`. Nothing
is imported here, and no module of this package but `workers.main` (the `celery` command line's
entry) makes an app when it is imported.
"""
