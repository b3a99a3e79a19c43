"""Helpers for the S3 plugin's tests: services on the session's moto server, request counting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from magnus_catalog_s3.catalog import S3Catalog
from magnus_catalog_s3.runlog import ChunkedS3RunLogStore


class RequestCounter:
    """Counts the S3 operations a boto3 client sends (``PutObject``, ``UploadPart``...)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **kwargs: Any) -> None:
        self.calls[model.name] += 1

    def attach(self, client: Any) -> RequestCounter:
        client.meta.events.register("before-call.s3.*", self)
        return self

    def of(self, *operations: str) -> int:
        return sum(self.calls[operation] for operation in operations)

    @property
    def uploads(self) -> int:
        """Requests that send object content."""
        return self.of("PutObject", "UploadPart")

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.fixture
def make_catalog(s3_server: str, s3_bucket: str, work: Path) -> Callable[..., S3Catalog]:
    """An S3 catalog on the test's bucket; keyword arguments override its settings."""

    def make(**settings: Any) -> S3Catalog:
        values: dict[str, Any] = {
            "bucket": s3_bucket,
            "prefix": "catalog",
            "endpoint_url": s3_server,
            "region": "us-east-1",
            "max_attempts": 2,
            "compute_data_folder": str(work),
        }
        values.update(settings)
        return S3Catalog(**values)

    return make


@pytest.fixture
def make_store(s3_server: str, s3_bucket: str) -> Callable[..., ChunkedS3RunLogStore]:
    """A chunked-s3 store on the test's bucket; keyword arguments override its settings."""

    def make(**settings: Any) -> ChunkedS3RunLogStore:
        values: dict[str, Any] = {
            "bucket": s3_bucket,
            "prefix": "run-logs",
            "endpoint_url": s3_server,
            "region": "us-east-1",
            "max_attempts": 2,
        }
        values.update(settings)
        return ChunkedS3RunLogStore(**values)

    return make


@pytest.fixture
def count_requests() -> Iterator[Callable[[Any], RequestCounter]]:
    """Attach a request counter to a boto3 client (a service's ``client()``)."""
    attached: list[tuple[Any, RequestCounter]] = []

    def attach(client: Any) -> RequestCounter:
        counter = RequestCounter().attach(client)
        attached.append((client, counter))
        return counter

    yield attach
    for client, counter in attached:
        client.meta.events.unregister("before-call.s3.*", counter)
