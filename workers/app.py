"""The Celery app: Redis as broker and result backend, configured from the settings.

Delivery is at-least-once by design (late acks, a task whose worker dies is delivered again,
prefetch of one so a dead worker strands at most one message per thread). Every task is idempotent
and the periodic scan reconciles whatever a lost or repeated message leaves behind. Every task
names the deployment that sent it, and workers run only their own deployment's
(`workers.deployment`).
"""

from __future__ import annotations

from core.settings import Settings, get_settings
from workers.beat import beat_schedule
from workers.deployment import Deployment, DeploymentCelery

app = DeploymentCelery(
    "rag",
    include=["workers.tasks.ingestion", "workers.tasks.maintenance", "workers.tasks.evaluation"],
)


def configure(settings: Settings) -> None:
    """Point the app at `settings`; `rag up` calls it again once it knows which Redis to use."""
    workers = settings.workers
    scans = {"queue": workers.celery_scan_queue}
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
        task_routes={
            "rag.scan_bucket": scans,
            "rag.scan_keys": scans,
            "rag.index.optimize": scans,
            "rag.index.rebuild": scans,
            "rag.eval.nightly": scans,
            "rag.eval.tenants": scans,
            "rag.eval.tenant": scans,
        },
        broker_transport_options={"visibility_timeout": workers.broker_visibility_timeout_seconds},
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
    )


configure(get_settings())
