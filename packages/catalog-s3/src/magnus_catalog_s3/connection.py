"""The connection settings both S3 services share, and the boto3 client made from them.

Credentials are deliberately *not* settings: boto3 finds them through its default chain
(environment, shared config/credentials files and profiles, container and instance roles), so
nothing secret can reach a configuration file or the ``run_config`` of a run log.

boto3 and botocore are imported inside the methods that need them: ``import magnus`` and
``magnus --help`` must not pay for them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

MIB = 1024 * 1024

#: User metadata key holding the SHA-256 of an object's content (``x-amz-meta-sha256``).
HASH_METADATA = "sha256"

# Error codes S3 (and S3-compatible servers) use when the caller may not do what it asked.
_DENIED_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
    }
)
_MISSING_KEY_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class _ClientSlot:
    """Holds the boto3 client of one service, made on first use.

    A client holds sockets and thread pools: it is neither picklable nor worth deep-copying. A
    pickled or deep-copied slot therefore starts empty and makes its own client when first used,
    which is what a process started by ``multiprocessing`` (``spawn``) needs. Clients are kept by
    the settings and the process id they were made for: a shallow ``model_copy`` (which shares the
    slot) that changed a setting, or a forked child, gets a client of its own, never a stale or
    shared one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        # Creating a botocore client is not thread-safe, and two clients would waste pools.
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]

    def __reduce__(self) -> tuple[type[_ClientSlot], tuple[()]]:
        return (_ClientSlot, ())

    def __deepcopy__(self, memo: dict[int, Any]) -> _ClientSlot:
        return _ClientSlot()

    def __eq__(self, other: object) -> bool:
        # A cache, not configuration: services with equal settings are equal whatever it holds.
        return isinstance(other, _ClientSlot)

    __hash__ = None  # type: ignore[assignment]


class S3Connection(BaseModel):
    """Where the objects live and how to talk to the endpoint; shared by ``s3`` and ``chunked-s3``.

    Objects are stored under ``s3://<bucket>/<prefix>/<run_id>/``. A catalog and a run-log store
    must not share one bucket *and* prefix: the catalog would see the run log's records as data.
    """

    model_config = ConfigDict(extra="forbid")

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # S3 refuses parts under 5 MiB (but the last), and allows at most 5 GiB per part.
    multipart_threshold_mb: int = Field(default=16, ge=1)
    multipart_chunksize_mb: int = Field(default=16, ge=5, le=5120)
    max_concurrency: int = Field(default=8, ge=1, le=64)

    _client_slot: _ClientSlot = PrivateAttr(default_factory=_ClientSlot)

    @field_validator("bucket")
    @classmethod
    def _plain_bucket_name(cls, value: str) -> str:
        if not value or value != value.strip() or "/" in value:
            raise ValueError(
                f"{value!r} is not a bucket name (give the bucket alone; a key prefix goes in "
                "'prefix')"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _normalised_prefix(cls, value: str) -> str:
        # Leading and trailing slashes are forgiven; anything else that would make two spellings
        # of one location (empty, "." or ".." segments) is refused.
        stripped = value.strip("/")
        if stripped and any(part in ("", ".", "..") for part in stripped.split("/")):
            raise ValueError(f"the key prefix {value!r} has an empty, '.' or '..' segment")
        return stripped

    # ------------------------------------------------------------------ keys

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` joined under the prefix."""
        return "/".join(part for part in (self.prefix, *parts) if part)

    def url(self, key: str = "") -> str:
        """``s3://bucket/key`` for messages and records."""
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    # ------------------------------------------------------------------ clients

    def _client_settings(self) -> tuple[Any, ...]:
        return (
            os.getpid(),
            self.endpoint_url,
            self.region,
            self.addressing_style,
            self.max_attempts,
            self.retry_mode,
            self.connect_timeout,
            self.read_timeout,
            self.max_concurrency,
        )

    def client(self) -> Any:
        """The boto3 S3 client of this service, made once (per process) and then reused."""
        return self._client_slot.get(self._client_settings(), self._make_client)

    def _make_client(self) -> Any:
        import boto3.session
        from botocore.config import Config

        config = Config(
            region_name=self.region,
            retries={"mode": self.retry_mode, "max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            s3={"addressing_style": self.addressing_style},
            # Transfers run up to max_concurrency requests at once; a smaller pool would make
            # them queue for a connection (and log a warning per discarded connection).
            max_pool_connections=max(10, self.max_concurrency + 2),
        )
        # A session of our own: boto3's default session is shared and not thread-safe.
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def transfer_config(self) -> TransferConfig:
        """Multipart settings for managed transfers (bounded concurrency, threads)."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.multipart_threshold_mb * MIB,
            multipart_chunksize=self.multipart_chunksize_mb * MIB,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )
        return config

    # ------------------------------------------------------------------ errors

    def explain(self, error: BaseException) -> str:
        """Why a call failed, in words a user can act on (the caller names bucket and key)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        endpoint = self.endpoint_url or "the default AWS endpoint"
        # s3transfer gives up on a download with RetriesExceededError(last_exception): the cause
        # is what the user needs.
        cause = getattr(error, "last_exception", None)
        if isinstance(cause, BaseException):
            return self.explain(cause)
        if isinstance(error, ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code", ""))
            message = details.get("Message") or code
            if code == "NoSuchBucket":
                return f"the bucket {self.bucket!r} does not exist ({endpoint})"
            if code in _DENIED_CODES:
                return (
                    f"access denied ({code}: {message}); check the credentials boto3 finds "
                    "(environment, profile, instance role) and their permissions on the bucket"
                )
            if code in _MISSING_KEY_CODES:
                return "no such object"
            return f"{code}: {message}"
        if isinstance(error, NoCredentialsError):
            return (
                "no AWS credentials found; boto3 looks in the environment, the shared "
                "credentials and config files (AWS_PROFILE) and the instance or container role"
            )
        if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
            return f"cannot reach the S3 endpoint {endpoint}: {error}"
        if isinstance(error, (ReadTimeoutError, ConnectionClosedError)):
            return f"the S3 endpoint {endpoint} stopped answering: {error}"
        if isinstance(error, OSError):
            return error.strerror or str(error)
        return f"{type(error).__name__}: {error}"


def remote_errors() -> tuple[type[BaseException], ...]:
    """What a boto3 call or a managed transfer may raise besides programming errors."""
    from concurrent.futures import CancelledError

    import s3transfer.exceptions
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (
        ClientError,
        BotoCoreError,
        Boto3Error,
        s3transfer.exceptions.RetriesExceededError,
        s3transfer.exceptions.S3UploadFailedError,
        CancelledError,
        OSError,
    )


def error_code(error: BaseException) -> str:
    """The S3 error code of a ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))
