"""The Celery app: Redis as broker and result backend, configured from the settings.

Delivery is at-least-once by design (late acks, a task whose worker dies is delivered again,
prefetch of one so a dead worker strands at most one message per thread). Every task is idempotent
and the periodic scan reconciles whatever a lost or repeated message leaves behind. Every task
names the deployment that sent it, and workers run only their own deployment's
(`workers.deployment`).
"""

from __future__ import annotations

import importlib

from core.settings import Settings
from workers import names
from workers.beat import beat_schedule
from workers.deployment import Deployment, DeploymentCelery

# The tasks are `shared_task`s of these modules: each app this process makes takes them all.
TASK_MODULES = ["workers.tasks.ingestion", "workers.tasks.maintenance", "workers.tasks.evaluation"]


def create_app(settings: Settings) -> DeploymentCelery:
    """The app of `settings`' deployment, made the process's default and current one, through
    which every task is sent and run (`rag up`, `rag worker`, the `celery` command line of
    `workers.main`, and `rag eval`'s hand-off). Made when asked, never at import: one made
    later (`rag up`, once it knows which Redis to use) replaces it."""
    workers = settings.workers
    scans = {"queue": workers.celery_scan_queue}
    app = DeploymentCelery("rag", include=TASK_MODULES, set_as_current=True)
    app.set_default()  # threads that did not make it (pool, watcher, API) use it too
    app.deployment = Deployment.of(settings)
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=workers.celery_documents_queue,
        task_routes={name: scans for name in names.ON_SCAN_QUEUE},
        broker_transport_options={"visibility_timeout": workers.broker_visibility_timeout_seconds},
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
    )
    for module in TASK_MODULES:  # registered now, so that tasks are sent by name at once
        importlib.import_module(module)
    app.finalize(auto=True)
    return app
