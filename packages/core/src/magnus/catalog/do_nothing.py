"""The built-in ``do-nothing`` catalog: steps cannot pass files through it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

from magnus.catalog.base import BaseCatalog
from magnus.catalog.copying import file_hash
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog


class DoNothingCatalog(BaseCatalog):
    """A catalog that stores nothing: steps cannot pass files through it.

    ``get`` and ``put`` move and record nothing; ``put_file`` still returns a record carrying the
    file's hash (so a step log shows what its execution log was) but with empty catalog paths.
    """

    service_name: ClassVar[str] = "do-nothing"

    def get(
        self, name: str, run_id: str, compute_data_folder: str | None = None
    ) -> list[DataCatalog]:
        """Get nothing."""
        return []

    def put(
        self,
        name: str,
        run_id: str,
        compute_data_folder: str | None = None,
        synced_catalogs: list[DataCatalog] | None = None,
    ) -> list[DataCatalog]:
        """Put nothing."""
        return []

    def put_file(self, path: Path, catalog_name: str, run_id: str) -> DataCatalog:
        """Store nothing; return a record of the file's name and hash only."""
        try:
            data_hash = file_hash(path)
        except OSError as exc:
            raise CatalogError(
                f"Cannot read {path} to record it as {catalog_name!r} for run {run_id!r}: {exc}"
            ) from exc
        return DataCatalog(name=catalog_name, data_hash=data_hash, stage="put")

    def put_data(self, data: bytes, catalog_name: str, run_id: str) -> DataCatalog:
        """Store nothing; return a record of the name and the data's hash only."""
        return DataCatalog(
            name=catalog_name, data_hash=hashlib.sha256(data).hexdigest(), stage="put"
        )

    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Nothing to sync."""

    @property
    def location(self) -> str:
        """Nowhere."""
        return ""
