"""The built-in ``file-system`` catalog: a local (or mounted) folder per run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import ClassVar

from pydantic import PrivateAttr

from magnus.catalog.base import BaseCatalog
from magnus.catalog.copying import (
    PARTIAL_SUFFIX,
    copy_with_hash,
    link_identical,
    write_new_file,
)
from magnus.catalog.hash_cache import CACHE_FILE, HashCache
from magnus.catalog.paths import (
    check_destination,
    check_run_id,
    glob_files,
    is_execution_log,
    safe_relative,
)
from magnus.exceptions import CatalogError
from magnus.runlog.models import DataCatalog


def _not_run_data(relative: str, _resolved: Path) -> bool:
    """Whether a file of a run's catalog folder is no data to get or sync.

    Execution logs belong to the step that wrote them; a partial file is a copy killed half-way.
    """
    return is_execution_log(relative) or relative.endswith(PARTIAL_SUFFIX)


#: How many distinct contents ``put_data`` remembers to link to (a map's elements may each print
#: something of their own; those are written), and the largest it compares before linking.
_WRITTEN_BYTES_KEPT = 64
_LINKED_SIZE = 64 * 1024


class FileSystemCatalog(BaseCatalog):
    """A catalog in a local (or mounted) folder: ``<catalog_location>/<run_id>/<path>``.

    ``<path>`` is the file's path relative to the compute data folder, so the run folder mirrors
    the project; execution logs and ``put_file`` files sit at ``<run_id>/<catalog_name>``. Relative
    locations are taken from the working directory at the time of each call.

    The hashes of files in the compute folder are remembered in
    ``<catalog_location>/.hash-cache.json`` (:mod:`magnus.catalog.hash_cache`), so that hashing
    an unchanged file again reads nothing.
    """

    service_name: ClassVar[str] = "file-system"

    catalog_location: str = ".catalog"

    _cache: HashCache | None = PrivateAttr(default=None)
    # The resolved catalog root per (location, working directory), and the catalog folders
    # this process checked and wrote into: a step's execution log costs no path walk.
    _roots: dict[tuple[str, str], Path] = PrivateAttr(default_factory=dict)
    _run_folders: dict[tuple[str, str, str], Path] = PrivateAttr(default_factory=dict)
    _written_folders: set[str] = PrivateAttr(default_factory=set)
    # (run folder, sha256) -> a file put_data wrote there with those bytes: the same bytes
    # again are linked to it (see link_identical).
    _written_bytes: dict[tuple[Path, str], str] = PrivateAttr(default_factory=dict)

    @property
    def location(self) -> str:
        """The configured ``catalog_location``, as written in the configuration."""
        return self.catalog_location

    def _catalog_root(self) -> Path:
        key = (self.catalog_location, os.getcwd())
        root = self._roots.get(key)
        if root is None:
            root = self._roots[key] = Path(self.catalog_location).resolve()
        return root

    def _hash_cache(self) -> HashCache:
        # One cache per catalog, read again only when another process replaced its file: a
        # reuse check asks it per file, and a large cache takes long to read.
        path = self._catalog_root() / CACHE_FILE
        cache = self._cache
        if cache is None or cache.path != path or not cache.is_current():
            cache = self._cache = HashCache(path)
        return cache

    def _run_folder(self, run_id: str) -> Path:
        key = (run_id, self.catalog_location, os.getcwd())
        folder = self._run_folders.get(key)
        if folder is None:
            check_run_id(run_id)
            if len(self._run_folders) >= _WRITTEN_BYTES_KEPT:
                self._run_folders.clear()
            folder = self._run_folders[key] = self._catalog_root() / run_id
        return folder

    def get(
        self, name: str, run_id: str, compute_data_folder: str | None = None
    ) -> list[DataCatalog]:
        """Copy the run's catalog files matching ``name`` into the compute (or given) folder.

        The destination folder is created when missing. Execution logs are never matched.
        """
        run_folder = self._run_folder(run_id)
        if not run_folder.is_dir():
            raise CatalogError(
                f"No data in the catalog for run {run_id!r} at {run_folder}: "
                "put something in the catalog before getting from it"
            )
        destination = Path(compute_data_folder or self.compute_data_folder).resolve()

        matches = glob_files(run_folder, name, run_id, _not_run_data)
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in the catalog of run {run_id!r} "
                f"at {run_folder}"
            )
        try:
            destination.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"Cannot create {destination} to get {name!r} of run {run_id!r}: {exc}"
            ) from exc
        records = []
        folders: dict[Path, Path] = {}
        cache = self._hash_cache()
        for relative, source in matches.items():
            target = destination / relative
            try:
                check_destination(target, destination, f"getting {name!r}", run_id, folders)
                data_hash = copy_with_hash(source, target)
                # What a later put or check of this file would hash: known now.
                cache.remember(target, os.stat(target), data_hash)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot get {relative!r} of run {run_id!r} into {destination}: {exc}"
                ) from exc
            records.append(self.catalog_record(relative, run_id, data_hash, "get"))
        cache.save()
        return records

    def put(
        self,
        name: str,
        run_id: str,
        compute_data_folder: str | None = None,
        synced_catalogs: list[DataCatalog] | None = None,
    ) -> list[DataCatalog]:
        """Copy the compute folder's files matching ``name`` into the run's catalog folder.

        A file whose record would equal (name, catalog path, hash) one of ``synced_catalogs``
        is already in the catalog with that content: it is recorded but not copied again.
        """
        source_root = Path(compute_data_folder or self.compute_data_folder).resolve()
        if not source_root.is_dir():
            raise CatalogError(
                f"The compute data folder {source_root} does not exist (putting {name!r} for "
                f"run {run_id!r}); magnus does not create it for you"
            )
        run_folder = self._run_folder(run_id)
        catalog_root = self._catalog_root()
        # With the catalog inside the compute folder (the default: ".catalog" in "."), a "**/*"
        # put would otherwise copy the catalog into itself.
        catalog_nested = catalog_root.is_relative_to(source_root)

        def skip(_relative: str, resolved: Path) -> bool:
            return catalog_nested and resolved.is_relative_to(catalog_root)

        matches = glob_files(source_root, name, run_id, skip)
        if not matches:
            raise CatalogError(
                f"Did not find any files matching {name!r} in {source_root} (run {run_id!r})"
            )
        synced = {
            (entry.name, entry.catalog_relative_path, entry.data_hash)
            for entry in synced_catalogs or []
        }
        synced_paths = {(entry_name, path) for entry_name, path, _ in synced}
        records = []
        folders: dict[Path, Path] = {}
        cache = self._hash_cache()
        for relative, source in matches.items():
            record = self.catalog_record(relative, run_id, "", "put")
            key = (relative, record.catalog_relative_path)
            try:
                if key in synced_paths:
                    # Hashing first saves the write when nothing changed; the cache, the read.
                    record.data_hash = cache.file_hash(source)
                    if (*key, record.data_hash) in synced:
                        records.append(record)
                        continue
                # Taken before the copy: a change while copying moves mtime, so it would miss.
                status = os.stat(source)
                record.data_hash = self._store(
                    source, run_folder / relative, run_folder, run_id, folders
                )
                cache.remember(source, status, record.data_hash)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot put {relative!r} from {source_root} into the catalog of run "
                    f"{run_id!r} at {run_folder}: {exc}"
                ) from exc
            records.append(record)
        cache.save()
        return records

    @staticmethod
    def _store(
        source: Path,
        target: Path,
        run_folder: Path,
        run_id: str,
        folders: dict[Path, Path] | None = None,
    ) -> str:
        """Copy ``source`` to ``target`` inside ``run_folder``; return the content's hash.

        ``folders`` caches resolved folders across the files of one transfer. The copy makes
        the folders it needs (``run_folder`` among them) when they are missing.
        """
        check_destination(target, run_folder, f"putting {target.name!r}", run_id, folders)
        return copy_with_hash(source, target)

    def put_file(self, path: Path, catalog_name: str, run_id: str) -> DataCatalog:
        """Copy one file from anywhere to ``<run_id>/<catalog_name>`` in the catalog."""
        relative = safe_relative(catalog_name, "catalog name", run_id)
        run_folder = self._run_folder(run_id)
        source = Path(path)
        if not source.is_file():
            raise CatalogError(
                f"Cannot put {source} into the catalog of run {run_id!r} as {catalog_name!r}: "
                "it is not a file"
            )
        try:
            data_hash = self._store(source, run_folder / relative, run_folder, run_id)
        except OSError as exc:
            raise CatalogError(
                f"Cannot put {source} into the catalog of run {run_id!r} as {catalog_name!r}: {exc}"
            ) from exc
        return self.catalog_record(relative, run_id, data_hash, "put")

    def put_data(self, data: bytes, catalog_name: str, run_id: str) -> DataCatalog:
        """Write ``data`` straight to ``<run_id>/<catalog_name>``, never as a partial file.

        Bytes this process already wrote into the run's folder (an empty execution log, most
        often) are linked to that file rather than written again.
        """
        relative = safe_relative(catalog_name, "catalog name", run_id)
        run_folder = self._run_folder(run_id)
        # As text: a step's execution log is put this way, and paths cost more than the rest.
        target = f"{run_folder}/{relative}"
        data_hash = hashlib.sha256(data).hexdigest()
        try:
            # A folder written into before was checked then; a link made later inside the
            # run's own catalog folder would be the run's own doing.
            folder = target.rpartition("/")[0]
            if folder not in self._written_folders:
                check_destination(Path(target), run_folder, f"putting {catalog_name!r}", run_id)
            self._write_or_link(run_folder, data_hash, target, data)
            self._written_folders.add(folder)
        except OSError as exc:
            raise CatalogError(
                f"Cannot put {catalog_name!r} into the catalog of run {run_id!r} at "
                f"{run_folder}: {exc}"
            ) from exc
        return self.catalog_record(relative, run_id, data_hash, "put")

    def _write_or_link(self, run_folder: Path, data_hash: str, target: str, data: bytes) -> None:
        key = (run_folder, data_hash)
        known = self._written_bytes.get(key)
        if known is not None and known != target and link_identical(known, data, target):
            return
        write_new_file(Path(target), data)
        if len(data) > _LINKED_SIZE:
            return
        if len(self._written_bytes) >= _WRITTEN_BYTES_KEPT:
            self._written_bytes.clear()
        self._written_bytes[key] = target

    def copy_from_run(self, name: str, from_run_id: str, run_id: str) -> DataCatalog:
        """Copy ``<from_run_id>/<name>`` to ``<run_id>/<name>`` within the catalog."""
        relative = safe_relative(name, "catalog name", from_run_id)
        source = self._run_folder(from_run_id) / relative
        if not source.is_file():
            raise CatalogError(
                f"{relative!r} is no longer in the catalog of run {from_run_id!r} "
                f"({self._run_folder(from_run_id)})"
            )
        current = self._run_folder(run_id)
        try:
            data_hash = self._store(source, current / relative, current, run_id)
        except OSError as exc:
            raise CatalogError(
                f"Cannot copy {relative!r} of run {from_run_id!r} to run {run_id!r}: {exc}"
            ) from exc
        return self.catalog_record(relative, run_id, data_hash, "put")

    def compute_data_hash(self, name: str) -> str | None:
        """The SHA-256 of ``name`` in the compute data folder, from the stat cache when the file
        has not changed since it was hashed (by a put or get, say)."""
        cache = self._hash_cache()
        try:
            digest = cache.file_hash(Path(self.compute_data_folder).resolve() / name)
        except FileNotFoundError:
            return None
        cache.save()
        return digest

    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Copy the previous run's catalog folder (without execution logs) into this run's."""
        previous = self._run_folder(previous_run_id)
        current = self._run_folder(run_id)
        if not previous.is_dir():
            return  # the original put nothing in the catalog
        if previous == current:
            return

        folders: dict[Path, Path] = {}
        matches = glob_files(previous, "**/*", previous_run_id, _not_run_data)
        for relative, source in matches.items():
            try:
                self._store(source, current / relative, current, run_id, folders)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot sync {relative!r} from the catalog of run {previous_run_id!r} into "
                    f"run {run_id!r} at {current}: {exc}"
                ) from exc
