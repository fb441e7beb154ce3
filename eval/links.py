"""Short-lived signed links to a tenant's HTML report, for a browser that sends no API key.

A link names the tenant, the run and an expiry, signed with HMAC-SHA256 under
`RAG_EVAL_LINK_SECRET`, or, when that is unset, under a random key kept in `data_dir/eval-link.key`
(created on first use, readable by the owner only), which the CLI and the API of one data dir
share. The key file is written whole before it appears under its name, and the first writer
wins, so concurrent first uses all sign with one complete secret; a secret shorter than
`MIN_SECRET_BYTES` (an empty file, a short setting) is refused, since links signed under it could
be forged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from core.settings import Settings

MIN_SECRET_BYTES = 32
KEY_FILE = "eval-link.key"
_SIGNATURE = re.compile(r"[0-9a-f]{64}")  # a SHA-256 HMAC in hex, as `_signature` writes it


class LinkSecretError(ValueError):
    """The link secret is missing or too short to sign with; the message says where it is."""


def _create_key_file(path: Path) -> None:
    """A new random key at `path`, unless another process made one first (theirs stays).

    The key is written to a private temporary file, flushed to disk, then hard-linked to its
    name: a reader never sees a partial file, and `os.link` fails on an existing name, so the
    first writer wins and every process reads the same key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another writer's key came first: keep it
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def link_secret(settings: Settings) -> bytes:
    """`RAG_EVAL_LINK_SECRET`, else the data dir's key file (made on first use); LinkSecretError
    when it is shorter than `MIN_SECRET_BYTES`."""
    if settings.eval.link_secret is not None:
        secret = settings.eval.link_secret.get_secret_value().encode()
        where = "RAG_EVAL_LINK_SECRET"
    else:
        path = settings.data_dir / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        secret = path.read_bytes().strip()
        where = f"the link key file {path}"
    if len(secret) < MIN_SECRET_BYTES:
        raise LinkSecretError(
            f"{where} holds {len(secret)} bytes; report links need a secret of at least "
            f"{MIN_SECRET_BYTES}, or they could be forged (set RAG_EVAL_LINK_SECRET to a longer "
            f"one, or delete the key file and a new random one is made)"
        )
    return secret


class ReportLinks:
    """Signs and checks report links under one secret, read once (`link_secret`)."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl_seconds = ttl_seconds

    @classmethod
    def open(cls, settings: Settings) -> ReportLinks:
        return cls(link_secret(settings), settings.eval.link_ttl_seconds)

    def _signature(self, tenant: str, run_id: str, expires: int) -> str:
        message = f"{tenant}\n{run_id}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def link(self, tenant: str, run_id: str, base_url: str = "") -> str:
        """The path (prefixed by `base_url`) that opens the run's report until it expires."""
        expires = int(time.time() + self._ttl_seconds)
        query = urlencode({"expires": expires, "sig": self._signature(tenant, run_id, expires)})
        return f"{base_url}/v1/eval/shared/{tenant}/{run_id}?{query}"

    def is_valid(self, tenant: str, run_id: str, expires: int, sig: str) -> bool:
        """Whether `sig` signs this link and it has not expired; any other text is just invalid
        (compare_digest would raise on non-ASCII text)."""
        if expires < time.time() or not _SIGNATURE.fullmatch(sig):
            return False
        return hmac.compare_digest(self._signature(tenant, run_id, expires), sig)
