"""Run the API under uvicorn: what `rag serve` calls."""

from __future__ import annotations

import uvicorn

from api.platform import platform_app
from core.runtime import Runtime
from core.settings import Settings


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """One process, one event loop: the embedded shard allows a single owner, so no workers."""
    app = platform_app(Runtime(settings))
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        access_log=False,
    )
