"""The ``s3`` catalog: run data in ``s3://<bucket>/<prefix>/<run_id>/<path>``.

It keeps the file-system catalog's semantics (``magnus.catalog.FileSystemCatalog``): glob patterns
relative to the compute data folder (matched against keys as ``Path.glob`` matches files, see
:mod:`.patterns`), patterns that climb out refused, execution logs never handed back by ``get``,
files a step just got and did not change not copied again. What differs is how bytes move: see
:mod:`.transfers` (multipart uploads hashed as they are sent, checked downloads renamed into
place, server-side copies between runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from magnus.catalog import (
    BaseCatalog,
    check_destination,
    check_run_id,
    glob_files,
    is_execution_log,
    safe_relative,
)
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog
from magnus_catalog_s3.connection import HASH_METADATA, remote_errors
from magnus_catalog_s3.hash_records import RECORD_SUFFIX, is_hash_record
from magnus_catalog_s3.patterns import glob_matches, pattern_segments
from magnus_catalog_s3.transfers import S3Transfers, Stored, Upload, holds


class S3Catalog(S3Transfers, BaseCatalog):
    """A catalog in an S3 bucket (or any S3-compatible store): ``s3://bucket/prefix/run_id/path``.

    ``catalog_handler_location`` records ``s3://bucket/prefix`` and ``data_hash`` the SHA-256 of
    the content, which is also stored with each object: as ``x-amz-meta-sha256``, or, for a large
    file hashed while it was uploaded, in ``<key>.magnus-sha256`` beside it
    (:mod:`.hash_records`). Credentials come from boto3's default chain only. Every failure is a
    ``CatalogError`` naming bucket and key.
    """

    service_name: ClassVar[str] = "s3"

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``: what ``catalog_handler_location`` records."""
        return self.url(self.prefix)

    # ------------------------------------------------------------------ put

    @staticmethod
    def _check_not_a_record(what: str, name: str, run_id: str) -> None:
        if is_hash_record(name):
            raise CatalogError(
                f"Cannot put {what} into the catalog of run {run_id!r} as {name!r}: names "
                f"ending in {RECORD_SUFFIX!r} are where the catalog keeps hashes"
            )

    def _prepare_upload(self, source: Path, name: str, run_id: str) -> Upload:
        self._check_not_a_record(str(source), name, run_id)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise CatalogError(
                f"Cannot read {source} to put it into the catalog of run {run_id!r} as "
                f"{name!r}: {exc}"
            ) from exc
        return Upload(name, source, self._run_key(run_id, name), size)

    def _recorded(self, upload: Upload, run_id: str) -> DataCatalog:
        assert upload.data_hash is not None, "every upload is hashed by the time it is recorded"
        return self.catalog_record(upload.name, run_id, upload.data_hash, "put")

    def put(
        self,
        name: str,
        run_id: str,
        compute_data_folder: str | None = None,
        synced_catalogs: list[DataCatalog] | None = None,
    ) -> list[DataCatalog]:
        """Upload the compute folder's files matching ``name`` into the run's catalog.

        A file recorded in ``synced_catalogs`` with the same path and hash is recorded without
        any request; one whose object already carries its hash is recorded without an upload.
        Other large files are hashed as they are uploaded, not before.
        """
        source_root = Path(compute_data_folder or self.compute_data_folder).resolve()
        if not source_root.is_dir():
            raise CatalogError(
                f"The compute data folder {source_root} does not exist (putting {name!r} for "
                f"run {run_id!r}); magnus does not create it for you"
            )
        check_run_id(run_id)
        matches = glob_files(source_root, name, run_id)
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in {source_root} (run {run_id!r})"
            )
        synced = {
            (entry.name, entry.catalog_relative_path): entry.data_hash
            for entry in synced_catalogs or []
        }
        uploads = [
            self._prepare_upload(source, relative, run_id) for relative, source in matches.items()
        ]

        def got_unchanged(upload: Upload) -> bool:
            # Only a file that was got under this name is hashed before it may be skipped.
            got = synced.get((upload.name, f"{run_id}/{upload.name}"))
            return got is not None and got == self._hash_local(upload, run_id)

        self._upload([upload for upload in uploads if not got_unchanged(upload)], run_id)
        return [self._recorded(upload, run_id) for upload in uploads]

    def put_file(self, path: Path, catalog_name: str, run_id: str) -> DataCatalog:
        """Upload one file from anywhere to ``<run_id>/<catalog_name>`` (execution logs...)."""
        relative = safe_relative(catalog_name, "catalog name", run_id)
        check_run_id(run_id)
        source = Path(path)
        if not source.is_file():
            raise CatalogError(
                f"Cannot put {source} into the catalog of run {run_id!r} as {catalog_name!r}: "
                "it is not a file"
            )
        upload = self._prepare_upload(source, relative, run_id)
        self._upload([upload], run_id)
        return self._recorded(upload, run_id)

    def put_data(self, data: bytes, catalog_name: str, run_id: str) -> DataCatalog:
        """Upload ``data`` as ``<run_id>/<catalog_name>`` in one request, its hash attached."""
        import hashlib

        relative = safe_relative(catalog_name, "catalog name", run_id)
        check_run_id(run_id)
        self._check_not_a_record("data", relative, run_id)
        record = self.catalog_record(relative, run_id, hashlib.sha256(data).hexdigest(), "put")
        key = self._run_key(run_id, relative)
        try:
            self.client().put_object(
                Bucket=self.bucket, Key=key, Body=data, Metadata={HASH_METADATA: record.data_hash}
            )
        except remote_errors() as exc:
            self._fail(f"Cannot put {catalog_name!r} into the catalog of run {run_id!r}", key, exc)
        return record

    # ------------------------------------------------------------------ get

    def get(
        self, name: str, run_id: str, compute_data_folder: str | None = None
    ) -> list[DataCatalog]:
        """Download the run's objects matching ``name`` into the compute (or given) folder.

        Each object arrives in a temporary file, is hashed, checked against its stored SHA-256
        and renamed over the destination. A destination that already has the object's size and
        SHA-256 is left as it is, without a download. Execution logs are never matched.
        """
        folder = self._run_key(run_id) + "/"
        doing = f"Cannot get {name!r} from the catalog of run {run_id!r}"
        segments = pattern_segments(name, run_id, self.url(folder))
        stored = self._list_run(run_id, doing)
        if not stored:
            raise CatalogError(
                f"No data in the catalog for run {run_id!r} at {self.url(folder)}: "
                "put something in the catalog before getting from it"
            )
        matches = {
            relative: item
            for relative, item in sorted(stored.items())
            if not is_execution_log(relative) and glob_matches(relative, segments)
        }
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in the catalog of run {run_id!r} "
                f"at {self.url(folder)}"
            )
        destination = Path(compute_data_folder or self.compute_data_folder).resolve()
        try:
            destination.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"Cannot create {destination} to get {name!r} of run {run_id!r}: {exc}"
            ) from exc
        targets: dict[str, Path] = {}
        for relative in matches:
            target = destination / relative
            check_destination(target, destination, f"getting {name!r}", run_id)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot get {relative!r} of run {run_id!r} into {destination}: {exc}"
                ) from exc
            targets[relative] = target
        hashes = self._map(
            lambda item: self._stored_hash(item.key, doing, item.has_record),
            list(matches.values()),
        )
        expected = dict(zip(matches, hashes, strict=True))
        # A destination that already holds the object is not downloaded again (re-runs, and
        # parallel steps getting the same data, would otherwise rewrite it under each other).
        records = {
            relative: self.catalog_record(relative, run_id, stored_hash, "get")
            for relative, stored_hash in expected.items()
            if stored_hash is not None
            and holds(targets[relative], matches[relative].size, stored_hash)
        }
        missing = {relative: item for relative, item in matches.items() if relative not in records}
        if missing:
            downloaded = self._download(missing, targets, expected, run_id, destination)
            for relative, data_hash in downloaded.items():
                records[relative] = self.catalog_record(relative, run_id, data_hash, "get")
        return [records[relative] for relative in matches]

    # ------------------------------------------------------------------ re-runs

    def copy_from_run(self, name: str, from_run_id: str, run_id: str) -> DataCatalog:
        """Copy one object server-side into this run; its record holds the stored SHA-256.

        The hash is the one stored with the object when it was put (in its metadata, or in a
        current record beside it), so nothing is downloaded; an object without one is gone as far
        as reuse is concerned.
        """
        relative = safe_relative(name, "catalog name", from_run_id)
        doing = f"Cannot copy {relative!r} of run {from_run_id!r} into run {run_id!r}"
        check_run_id(run_id)
        key = self._run_key(from_run_id, relative)
        found = self._describe(key, doing)
        if found is None or found.data_hash is None:
            raise CatalogError(
                f"{relative!r} is no longer in the catalog of run {from_run_id!r} "
                f"({self.url(key)}), or has no stored sha256"
            )
        in_metadata = found.metadata.get(HASH_METADATA) == found.data_hash
        self._copy([(relative, Stored(key, found.size, not in_metadata))], run_id, doing)
        return self.catalog_record(relative, run_id, found.data_hash, "put")

    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Copy the previous run's objects (not its execution logs) server-side into this run.

        An original with no objects syncs nothing.
        """
        doing = f"Cannot sync the catalog of run {previous_run_id!r} into run {run_id!r}"
        check_run_id(run_id)
        stored = self._list_run(previous_run_id, doing)
        if not stored or previous_run_id == run_id:
            return
        items = [
            (relative, item) for relative, item in stored.items() if not is_execution_log(relative)
        ]
        self._copy(items, run_id, doing)
