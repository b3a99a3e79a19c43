"""The catalog contract: what every catalog does, and the record of a transfer.

A catalog is central storage partitioned by run id. Steps ``get`` files from it before they run and
``put`` files into it after they succeed; every transfer is recorded in the step log with the
SHA-256 of the content. Glob patterns are relative to the *compute data folder* (default: the
working directory); a pattern or path that escapes that folder, or the catalog, is refused.
"""

from __future__ import annotations

import contextlib
import os
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from magnus.catalog.copying import file_hash
from magnus.runlog.models import DataCatalog
from magnus.services import BaseService


class BaseCatalog(BaseService):
    """Base of every catalog. Subclasses implement the abstract methods.

    Errors are ``magnus.exceptions.CatalogError`` with a message naming the pattern, path and
    run: no file matched, a path escaped its folder, the run has nothing in the catalog, or I/O
    failed. The executor turns them into a failed step, never a crashed run.
    """

    service_type: ClassVar[str] = "catalog"

    compute_data_folder: str = "."

    @abstractmethod
    def get(
        self, name: str, run_id: str, compute_data_folder: str | None = None
    ) -> list[DataCatalog]:
        """Copy every catalog file of the run matching glob ``name`` into the compute folder.

        Records ``name`` (path relative to the compute folder), ``data_hash``,
        ``catalog_relative_path``, ``catalog_handler_location`` and stage ``get``. Execution logs
        are never matched. ``compute_data_folder`` overrides the configured one for this call.
        """

    @abstractmethod
    def put(
        self,
        name: str,
        run_id: str,
        compute_data_folder: str | None = None,
        synced_catalogs: list[DataCatalog] | None = None,
    ) -> list[DataCatalog]:
        """Copy every file of the compute folder matching glob ``name`` into the run's catalog.

        Records stage ``put``, ``catalog_relative_path`` = ``<run_id>/<name>``. A file whose
        path and hash equal an entry of ``synced_catalogs`` (what this step already got) is
        recorded but not copied again.
        """

    @abstractmethod
    def put_file(self, path: Path, catalog_name: str, run_id: str) -> DataCatalog:
        """Store one local file of any location under ``<run_id>/<catalog_name>``.

        Used for execution logs, code diffs and pickled objects; records stage ``put``.
        """

    def put_data(self, data: bytes, catalog_name: str, run_id: str) -> DataCatalog:
        """Store ``data`` under ``<run_id>/<catalog_name>``, as ``put_file`` stores a file.

        Used for execution logs, which are kept in memory while they are small. This default
        writes ``data`` to a temporary file and calls ``put_file``, so every catalog has it;
        override it when the backend can take the bytes directly.
        """
        import tempfile

        handle, name = tempfile.mkstemp(prefix="magnus-", suffix=".data")
        try:
            with open(handle, "wb") as writer:
                writer.write(data)
            return self.put_file(Path(name), catalog_name, run_id)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    def copy_from_run(self, name: str, from_run_id: str, run_id: str) -> DataCatalog:
        """Copy the catalog file ``name`` of run ``from_run_id`` to ``name`` in run ``run_id``.

        Used to reuse an earlier result: the record (stage ``put``) holds the hash of what was
        copied, which the caller compares with what the earlier run recorded. A file that is no
        longer there raises ``CatalogError``. This default gets the file into a temporary folder
        and puts it from there, so every catalog has it; override it when the backend can copy
        within itself.
        """
        import glob
        import tempfile

        with tempfile.TemporaryDirectory(prefix="magnus-") as folder:
            self.get(glob.escape(name), from_run_id, compute_data_folder=folder)
            return self.put_file(Path(folder) / name, name, run_id)

    def compute_data_hash(self, name: str) -> str | None:
        """The SHA-256 of ``name`` in the compute data folder; ``None`` when it is not there.

        Reuse compares it with what an earlier step put. This default reads the file; a catalog
        that keeps a stat cache answers from it. Raises ``OSError`` when it cannot be read.
        """
        try:
            return file_hash(Path(self.compute_data_folder) / name)
        except FileNotFoundError:
            return None

    @abstractmethod
    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Copy what a re-run needs from the original run's catalog (not its execution logs).

        An original that has nothing in the catalog (its steps put nothing, or it stopped
        before any did) syncs nothing: that is not an error.
        """

    @property
    @abstractmethod
    def location(self) -> str:
        """What ``catalog_handler_location`` records: where the catalog lives."""

    def catalog_record(self, name: str, run_id: str, data_hash: str, stage: str) -> DataCatalog:
        """The record of ``name`` (relative to the run's folder) moved at ``stage``."""
        return DataCatalog(
            name=name,
            data_hash=data_hash,
            catalog_relative_path=f"{run_id}/{name}",
            catalog_handler_location=self.location,
            stage=stage,
        )
