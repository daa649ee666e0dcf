"""Results as objects in an S3 bucket, shared by every server process on every machine.

``RETOUCH_RESULTS_URL=s3://bucket/prefix`` picks this store; ``endpoint_url`` points it at an
S3-compatible server (SeaweedFS, MinIO, Ceph) instead of AWS. Credentials come from boto3's usual
chain (environment, shared files, instance role), never from Retouch's settings.

Each result is one object named ``prefix + key``: the media type is the key's extension (and the
object's Content-Type, for anyone reading the bucket directly) and the expiry, in whole unix
seconds, is the user metadata ``x-amz-meta-expires-at``. Every read checks that expiry, so an
expired object is never served even while it waits for the sweeper. S3 lifecycle rules count whole
days, far coarser than a result's hour, so ``sweep`` deletes by the metadata; a lifecycle rule of a
day or two on the prefix is still a sensible backstop for a deployment whose sweeper stops.

Connection failures and timeouts become ``ServiceUnavailable``: a request fails with a 503 while
storage is down, instead of a 500 or a request that hangs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from retouch.errors import ServiceUnavailable
from retouch.storage.base import StoredResult, media_type_of, new_key, unix_seconds

logger = logging.getLogger(__name__)

_EXPIRES = "expires-at"
# Error codes S3 and compatible servers use for an object that is not there (HEAD has no body,
# so only the status survives as its code).
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
# delete_objects takes at most this many keys a call.
_DELETE_BATCH = 1000


class S3ResultStore:
    def __init__(self, url: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        """``client`` replaces the boto3 client built from ``endpoint_url`` (tests, custom auth)."""
        self._bucket, self._prefix = _parse_url(url)
        # One client for the store's lifetime: boto3 clients are thread-safe, sessions are not.
        self._client = client if client is not None else _new_client(endpoint_url)
        # Storage down at boot must not stop the node: it starts, /readyz says "storage", and
        # the first call after S3 returns finds (or creates) the bucket.
        self._bucket_ready = False
        try:
            self._require_bucket()
        except ServiceUnavailable:
            logger.warning("result storage unreachable at start; retrying on each use")

    def put(self, data: bytes, *, media_type: str, expires_at: datetime) -> str:
        key = new_key(media_type)
        self._require_bucket()
        with _unavailable_on_failure():
            # A PUT is atomic in S3: a reader sees no object or the whole one, with its metadata.
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._prefix + key,
                Body=data,
                ContentType=media_type,
                Metadata={_EXPIRES: str(unix_seconds(expires_at))},
            )
        return key

    def get(self, key: str, *, now: datetime) -> StoredResult | None:
        media_type = media_type_of(key)
        if media_type is None:
            return None
        self._require_bucket()
        with _unavailable_on_failure():
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
            except ClientError as exc:
                if _is_missing(exc):
                    return None
                raise
            body = response["Body"]
            try:
                # The expiry checked is that of the bytes read: both come from one response.
                expiry = _expiry_of(response)
                if expiry <= now.timestamp():
                    return None
                data = body.read()
            finally:
                body.close()
        return StoredResult(data, media_type, datetime.fromtimestamp(expiry, UTC))

    def extend(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        media_type = media_type_of(key)
        if media_type is None:
            return False
        name = self._prefix + key
        self._require_bucket()
        with _unavailable_on_failure():
            try:
                current = _expiry_of(self._client.head_object(Bucket=self._bucket, Key=name))
                # An expired result stays dead even before the sweeper removes it.
                if current <= now.timestamp():
                    return False
                wanted = unix_seconds(expires_at)
                if wanted > current:
                    # S3 cannot edit metadata in place; copying an object onto itself with
                    # REPLACE rewrites it server-side. Two extends racing can both pass the
                    # check and the smaller may land last, as with the local store's utime.
                    self._client.copy_object(
                        Bucket=self._bucket,
                        Key=name,
                        CopySource={"Bucket": self._bucket, "Key": name},
                        MetadataDirective="REPLACE",
                        ContentType=media_type,
                        Metadata={_EXPIRES: str(wanted)},
                    )
            except ClientError as exc:
                if _is_missing(exc):  # never stored, or swept between the HEAD and the copy
                    return False
                raise
        return True

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """A URL that fetches the object straight from the bucket for ``expires_in`` seconds.

        Signed locally with the store's credentials (no request to S3). The sweeper removes an
        object once its own expiry passes, so a URL never outlives its result by more than one
        sweep interval.
        """
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._bucket, "Key": self._prefix + key},
            ExpiresIn=expires_in,
        )
        return url

    def ping(self) -> bool:
        try:
            if self._bucket_ready:
                self._client.head_bucket(Bucket=self._bucket)
            else:
                self._require_bucket()
        except Exception:
            return False
        return True

    def sweep(self, *, now: datetime) -> int:
        cutoff = now.timestamp()
        expired: list[str] = []
        self._require_bucket()
        with _unavailable_on_failure():
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    name = entry["Key"]
                    # Only objects named like keys are ours; anything else under the prefix
                    # (and "sub/folders", which never match) is left alone.
                    if media_type_of(name[len(self._prefix) :]) is None:
                        continue
                    # Listings carry no user metadata, so each candidate costs one HEAD.
                    try:
                        head = self._client.head_object(Bucket=self._bucket, Key=name)
                    except ClientError as exc:
                        if _is_missing(exc):
                            continue  # another process swept it first
                        raise
                    if _expiry_of(head) <= cutoff:
                        expired.append(name)
            deleted = 0
            for start in range(0, len(expired), _DELETE_BATCH):
                batch = expired[start : start + _DELETE_BATCH]
                # An extend landing between the HEAD and this delete is lost; it would have to
                # race the very second the result expires.
                response = self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
                deleted += len(batch) - len(response.get("Errors", []))
        return deleted

    def _require_bucket(self) -> None:
        """Make sure the bucket exists, once per store: until that has worked, every call
        tries again (and fails with ServiceUnavailable while S3 is unreachable). Two threads
        may both try; creating a bucket that exists is harmless."""
        if self._bucket_ready:
            return
        with _unavailable_on_failure():
            self._ensure_bucket()
        self._bucket_ready = True

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if not _is_missing(exc) and _code(exc) != "NoSuchBucket":
                raise  # 403 and the like: a bucket we may not use is a configuration error
        region = self._client.meta.region_name
        # Outside us-east-1, AWS wants the bucket's region stated again.
        options: dict[str, Any] = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}}
            if region not in (None, "us-east-1", "aws-global")
            else {}
        )
        try:
            self._client.create_bucket(Bucket=self._bucket, **options)
        except ClientError as exc:
            # Another process starting at the same moment created it first.
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise


def _parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); no path means the whole bucket."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"result storage URL must look like s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _new_client(endpoint_url: str | None) -> Any:
    # Short timeouts and one retry: a result request should fail in seconds, not hang a worker
    # thread, when storage is down. Reads are per socket read, not per object, so large
    # results fit.
    config = Config(
        # Presigned URLs default to the legacy SigV2 in us-east-1; SigV4 works in every region
        # and with every S3-compatible server.
        signature_version="s3v4",
        connect_timeout=2,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 2},
    )
    if endpoint_url is not None:
        # S3-compatible servers rarely have wildcard DNS for virtual-hosted buckets, and some
        # reject the CRC checksums boto3 adds by default since 1.36; send them only where the
        # API requires one (delete_objects).
        config = config.merge(
            Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )
    # A session of our own: boto3's module-level default session is shared and not thread-safe.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        raise ServiceUnavailable("result storage unavailable") from exc
    except ClientError as exc:
        # 5xx after the retries (InternalError, SlowDown): storage is up but not serving.
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
            raise ServiceUnavailable("result storage unavailable") from exc
        raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in _MISSING


def _expiry_of(response: dict[str, Any]) -> int:
    # An object without a readable expiry was not written by put(); treat it as long expired.
    try:
        return int(response.get("Metadata", {})[_EXPIRES])
    except (KeyError, ValueError):
        return 0
