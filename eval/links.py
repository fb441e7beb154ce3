"""Short-lived signed links to a tenant's HTML report, for a browser that sends no API key.

A link names the tenant, the run and an expiry, signed with HMAC-SHA256 under
`RAG_EVAL_LINK_SECRET`, or, when that is unset, under a random key the platform keeps in its
state database (`core.state.secrets`), made by the first process that needs one: every process
and host sharing the state signs and checks with the same key, so a link made on one host opens
on another. A data dir of a release that kept the key in `data_dir/eval-link.key` has it adopted
from there. A secret shorter than `MIN_SECRET_BYTES` (an empty key file, a short setting) is
refused, since links signed under it could be forged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import urlencode

from core.settings import Settings
from core.state.secrets import stored_secret

MIN_SECRET_BYTES = 32
KEY_FILE = "eval-link.key"  # where releases before the state database kept the key
SECRET_NAME = "eval-link"
_SIGNATURE = re.compile(r"[0-9a-f]{64}")  # a SHA-256 HMAC in hex, as `_signature` writes it


class LinkSecretError(ValueError):
    """The link secret is missing or too short to sign with; the message says where it is."""


def link_secret(settings: Settings) -> bytes:
    """`RAG_EVAL_LINK_SECRET`, else the state's link key (made on first use, or adopted from the
    data dir's key file); LinkSecretError when it is shorter than `MIN_SECRET_BYTES`."""
    if settings.eval.link_secret is not None:
        return _long_enough(
            settings.eval.link_secret.get_secret_value().encode(), "RAG_EVAL_LINK_SECRET"
        )
    key_file = settings.data_dir / KEY_FILE
    if key_file.exists():  # a data dir of an earlier release: its key, if it is one, is adopted
        candidate = _long_enough(key_file.read_bytes().strip(), f"the link key file {key_file}")
    else:
        candidate = secrets.token_hex(32).encode()
    stored = stored_secret(settings, SECRET_NAME, candidate.decode()).encode()
    return _long_enough(stored, f"the link key stored as {SECRET_NAME!r}")


def _long_enough(secret: bytes, where: str) -> bytes:
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
