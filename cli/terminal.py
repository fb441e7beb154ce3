"""What the commands print: untrusted text escaped, errors as one line on stderr, JSON on demand.

Document names, failure reasons and key labels come from bucket writers and API clients, so they
may hold rich markup (`[/]`) or terminal escapes (`\\x1b]0;TITLE\\x07`): they are printed as
`Text` (never parsed as markup) with every non-printable character spelled out.

Exit status of every command: 0 ok, 1 the job failed, 2 usage or configuration error.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

# Typer ships its own copy of click; its commands raise that copy's exceptions.
from typer._click.exceptions import BadParameter, ClickException, NoArgsIsHelpError, UsageError

from core.types import InvalidTenantError, TenantScope

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CODES_HELP = "Exit status: 0 ok, 1 the job failed, 2 usage or configuration error."

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(ClickException):
    """A failure the user can act on: one line naming what is wrong and what to do."""

    def __init__(self, message: str, hint: str = "", exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code

    def format_message(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def require_folder(bucket_url: str) -> None:
    """A local bucket must exist before anything starts; an S3 bucket is checked by its listing."""
    if bucket_url.startswith("s3://"):
        return
    folder = Path(bucket_url.removeprefix("file://"))
    if not folder.is_dir():
        raise CliError(
            f"no folder {safe(folder)}",
            "create it, or pass another folder (the default is RAG_BUCKET_URL)",
            EXIT_USAGE,
        )


def tenant_id(value: str) -> str:
    """The parser of every `--tenant`: a tenant id, or a usage error (status 2) naming the rule,
    as the API answers 422. An empty value is refused, never read as "no tenant given"."""
    try:
        return TenantScope(value).tenant_id
    except InvalidTenantError as exc:
        raise BadParameter(safe(exc)) from None


def safe(text: object) -> str:
    """`text` with control and other non-printable characters written as escapes."""
    out = []
    for ch in str(text):
        if ch.isprintable():
            out.append(ch)
        elif ch in "\n\t":
            out.append("\\n" if ch == "\n" else "\\t")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def cell(text: object) -> Text:
    """A table cell or line of untrusted text: escaped, and never read as markup."""
    return Text(safe(text))


def local_time(ts: float | None) -> str:
    """An epoch time as a date in the machine's time zone, e.g. `2026-12-02 01:07 UTC`."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def print_json(data: Any) -> None:
    """One JSON document on stdout (ASCII-escaped, so no byte of it can drive the terminal)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception that ended a command."""
    if isinstance(exc, CliError):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, UsageError):
        ctx = exc.ctx
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return f"{exc.format_message()}{where}", EXIT_USAGE
    if isinstance(exc, ClickException):
        return exc.format_message(), exc.exit_code
    for cause in _chain(exc):  # a wrapped cause (no S3 credentials under a failed listing) first
        known = _known_error(cause)
        if known is not None:
            return known.format_message(), known.exit_code
    return (
        f"{type(exc).__name__}: {exc} (an unexpected error; rerun with --debug for the traceback)",
        EXIT_FAILED,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`'s causes, innermost first, then `exc` itself."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 16:
        chain.append(chain[-1].__cause__)
    return chain[::-1]


def report(exc: BaseException) -> int:
    """Print `exc` as one line on stderr; returns the exit status."""
    if isinstance(exc, NoArgsIsHelpError):  # `rag keys` alone: the help, as a usage error
        exc.show()
        return EXIT_USAGE
    message, code = error_line(exc)
    err_console.print(Text(f"rag: error: {safe(' '.join(message.split()))}", style="red"))
    return code


def _raised(exc: BaseException, module: str, *names: str) -> bool:
    """Whether `exc` is one of `module`'s exceptions `names`, without importing `module`: if it
    was never imported, none of its exceptions was raised (and importing it may be what failed)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, tuple(getattr(loaded, n) for n in names))


def _known_error(exc: BaseException) -> CliError | None:
    """Errors of configuration and environment the user fixes, with what to do about each."""
    if _raised(exc, "pydantic_core", "ValidationError"):
        from core.settings import variable_of

        first = exc.errors()[0]  # type: ignore[attr-defined]
        variable = variable_of(exc.title, tuple(first.get("loc", ())))  # type: ignore[attr-defined]
        return CliError(
            f"invalid setting {variable}: {first.get('msg')}",
            "fix it in the environment or .env",
            EXIT_USAGE,
        )
    if (
        _raised(exc, "core.index.lock", "ShardLockedError")
        or _raised(exc, "api.server", "AddressInUseError")
        or _raised(exc, "workers.redis_server", "RedisUnavailableError")
        or _raised(exc, "core.types", "InvalidTenantError")
        or _raised(exc, "core.extras", "MissingExtraError")
        or _raised(exc, "eval.links", "LinkSecretError")
        or _raised(exc, "core.embedding", "ModelUnavailableError")
    ):
        return CliError(str(exc), exit_code=EXIT_USAGE)
    botocore = "botocore.exceptions"
    if _raised(exc, botocore, "NoCredentialsError", "PartialCredentialsError"):
        return CliError(
            "no credentials for the S3 bucket",
            "set RAG_AWS_ACCESS_KEY_ID and RAG_AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or give the machine an instance role)",
            EXIT_USAGE,
        )
    if _raised(exc, botocore, "EndpointConnectionError"):
        return CliError(str(exc), "check RAG_S3_ENDPOINT_URL and the network", EXIT_USAGE)
    if _raised(exc, botocore, "ClientError"):
        error = exc.response.get("Error", {})  # type: ignore[attr-defined]
        return CliError(
            f"S3 refused the request: {error.get('Code')}: {error.get('Message')}",
            "check the bucket name in RAG_BUCKET_URL and the credentials' permissions",
            EXIT_USAGE,
        )
    return None


# Plain errors, as `rag` itself prints them (cli/main.py), also when a group runs on its own.
PLAIN_ERRORS: dict = {"rich_markup_mode": None, "pretty_exceptions_enable": False}
TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id")]


def tenant_name(tenant: str) -> str:
    """A `TenantOption`'s tenant id, or a usage error (status 2) naming the rule."""
    try:
        return TenantScope(tenant).tenant_id
    except InvalidTenantError as exc:
        raise CliError(f"{exc}", exit_code=EXIT_USAGE) from None
