"""Optional parts of the platform and the extra that installs each (pyproject.toml).

A server or worker image can leave out what it does not run: `s3` (boto3, for s3:// buckets and
the SQS watcher), `eval` (RAGAS and its LLM clients, matplotlib for the report's charts) and
`postgres` (psycopg, for a state database in PostgreSQL). Code
that needs one imports it where it is used, and a missing one is this error, naming the extra.
"""

from __future__ import annotations

PACKAGE = "ragplatform"
# The top-level modules each extra provides, as an ImportError names them.
_EXTRA_MODULES = {
    "s3": {"boto3", "botocore"},
    "eval": {"ragas", "langchain_community", "rapidfuzz", "openai", "instructor", "matplotlib"},
    "postgres": {"psycopg"},
}


class MissingExtraError(ImportError):
    """A feature was asked for whose extra is not installed."""


def missing_extra(extra: str, feature: str, exc: ModuleNotFoundError) -> ImportError:
    """The error to raise when importing `feature`'s dependencies failed with `exc`: a
    `MissingExtraError` naming the extra when `exc` is about one of its modules, else `exc`."""
    module = (exc.name or "").split(".")[0]
    if module not in _EXTRA_MODULES[extra]:
        return exc
    return MissingExtraError(
        f"{feature} needs the '{extra}' extra, which is not installed ({module} is missing): "
        f"pip install '{PACKAGE}[{extra}]'"
    )
