"""An S3-compatible bucket (AWS, MinIO, Ceph, moto) through boto3.

Keys are relative to the URL's prefix, so `s3://docs/in/tenants/acme/a.pdf` is the key
`tenants/acme/a.pdf` and tenancy works as in a local folder. Listing and `stat` report the same
signature for the same object: S3 lists times in milliseconds but HEAD answers in whole seconds,
so times are kept to whole seconds, and the ETag (which changes on every upload) carries the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.settings import IngestSettings
from ingest.bucket import (
    Bucket,
    BucketUnavailableError,
    ObjectInfo,
    ObjectTooLargeError,
    check_key,
)

_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "AllAccessDisabled", "InvalidObjectState"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else ""


def aws_client(service: str, ingest: IngestSettings) -> Any:
    """A boto3 client with the endpoint, region and credentials the settings name."""
    key, secret = ingest.aws_access_key_id, ingest.aws_secret_access_key
    return boto3.session.Session().client(
        service,
        endpoint_url=ingest.s3_endpoint_url,
        region_name=ingest.s3_region,
        aws_access_key_id=key.get_secret_value() if key else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10),
    )


def _info(key: str, size: int, modified: datetime, etag: str) -> ObjectInfo:
    """LIST gives milliseconds, HEAD whole seconds: keep seconds so both give one signature."""
    return ObjectInfo(
        key=key, size=size, mtime=float(int(modified.timestamp())), etag=etag.strip('"')
    )


class S3Bucket(Bucket):
    """One bucket and prefix; credentials, region and endpoint come from the settings."""

    def __init__(self, url: str, ingest: IngestSettings) -> None:
        self.name, self.prefix = parse_s3_url(url)
        self._client = aws_client("s3", ingest)  # thread-safe: a worker's threads share it

    def list(self) -> Iterator[ObjectInfo]:
        """Every object under the prefix; a listing that fails raises BucketUnavailableError, so a
        scan never mistakes a failing bucket for an empty one."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix
        )
        try:
            listed = list(pages)
        except (ClientError, BotoCoreError) as exc:
            where = f"s3://{self.name}/{self.prefix}"
            raise BucketUnavailableError(f"cannot list {where}: {exc}") from exc
        for page in listed:
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if not key or key.endswith("/"):  # the prefix itself, or a "folder" marker
                    continue
                yield _info(key, item["Size"], item["LastModified"], item["ETag"])

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's current listing entry, or None when it is gone."""
        try:
            head = self._client.head_object(Bucket=self.name, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return _info(key, head["ContentLength"], head["LastModified"], head["ETag"])

    def read(self, key: str, max_bytes: int) -> bytes:
        """Refuses an oversized object from the response headers, before reading its body."""
        check_key(key)
        try:
            response = self._client.get_object(Bucket=self.name, Key=self.prefix + key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise FileNotFoundError(f"s3 object {key!r} is gone") from None
            if code in _DENIED:
                raise PermissionError(f"s3 object {key!r}: {code}") from None
            raise
        body = response["Body"]
        try:
            size = response["ContentLength"]
            if size > max_bytes:
                raise ObjectTooLargeError(f"{size} bytes is over the {max_bytes}-byte limit")
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise ObjectTooLargeError(f"over the {max_bytes}-byte limit")
        return data

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{quote(self.prefix + key)}"
