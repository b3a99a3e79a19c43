"""The S3 catalog and run-log store pass the contract suites magnus' own services pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from magnus_catalog_s3.catalog import S3Catalog
from magnus_catalog_s3.runlog import ChunkedS3RunLogStore

from magnus.testing import CatalogContract, RunLogStoreContract, count_storage_calls


class TestS3Catalog(CatalogContract):
    @pytest.fixture
    def catalog(self, tmp_path: Path, s3_server: str, s3_bucket: str) -> S3Catalog:
        work = tmp_path / "work"
        work.mkdir()
        return S3Catalog(
            bucket=s3_bucket,
            prefix="team/catalog",
            endpoint_url=s3_server,
            region="us-east-1",
            max_attempts=2,
            compute_data_folder=str(work),
        )


class TestChunkedS3RunLogStore(RunLogStoreContract):
    @pytest.fixture
    def run_log_store(self, s3_server: str, s3_bucket: str) -> ChunkedS3RunLogStore:
        return ChunkedS3RunLogStore(
            bucket=s3_bucket,
            prefix="team/run-logs",
            endpoint_url=s3_server,
            region="us-east-1",
            max_attempts=2,
        )

    @pytest.fixture
    def store_reads(
        self, run_log_store: ChunkedS3RunLogStore, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], int]:
        return count_storage_calls(run_log_store, monkeypatch)
