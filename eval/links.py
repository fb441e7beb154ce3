"""Short-lived signed links to a tenant's HTML report, for a browser that sends no API key.

A link names the tenant, the run and an expiry, signed with HMAC-SHA256 under
`RAG_EVAL_LINK_SECRET`, or, when that is unset, under a random key kept in `data_dir/eval-link.key`
(created on first use, readable by the owner only), which the CLI and the API of one data dir
share.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import urlencode

from core.settings import Settings


def _secret(settings: Settings) -> bytes:
    if settings.eval.link_secret is not None:
        return settings.eval.link_secret.get_secret_value().encode()
    path = settings.data_dir / "eval-link.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _signature(settings: Settings, tenant: str, run_id: str, expires: int) -> str:
    message = f"{tenant}\n{run_id}\n{expires}".encode()
    return hmac.new(_secret(settings), message, hashlib.sha256).hexdigest()


def report_link(settings: Settings, tenant: str, run_id: str, base_url: str = "") -> str:
    """The path (prefixed by `base_url`) that opens the run's report until it expires."""
    expires = int(time.time() + settings.eval.link_ttl_seconds)
    query = urlencode({"expires": expires, "sig": _signature(settings, tenant, run_id, expires)})
    return f"{base_url}/v1/eval/shared/{tenant}/{run_id}?{query}"


def link_is_valid(settings: Settings, tenant: str, run_id: str, expires: int, sig: str) -> bool:
    if expires < time.time():
        return False
    return hmac.compare_digest(_signature(settings, tenant, run_id, expires), sig)
