"""The catalog contract and the built-in ``do-nothing`` and ``file-system`` catalogs.

A catalog is central storage partitioned by run id. Steps ``get`` files from it before they run and
``put`` files into it after they succeed; every transfer is recorded in the step log with the
SHA-256 of the content. Glob patterns are relative to the *compute data folder* (default: the
working directory); a pattern or path that escapes that folder, or the catalog, is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import secrets
import stat
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import ClassVar

from magnus.exceptions import CatalogError
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


# --------------------------------------------------------------------------------------------------
# Helpers shared by every catalog that moves local files
# --------------------------------------------------------------------------------------------------

#: Read size when hashing or copying; large enough to amortise system calls, small enough that a
#: multi-gigabyte file never sits in memory.
CHUNK_SIZE = 1024 * 1024

# Suffix of the temporary file a copy writes before renaming it into place. Catalog reads skip such
# files, so the leftovers of a killed copy are never handed to a step.
_PARTIAL_SUFFIX = ".magnus-partial"

_EXECUTION_LOG = ".execution.log"


def is_execution_log(name: str) -> bool:
    """Whether a catalog path names a step's execution log.

    Execution logs are ``<step>.execution.log``, with ``_<value>`` appended per map value
    (``execute.execution.log_10``); only the last path segment is looked at.
    """
    base = name.rsplit("/", 1)[-1]
    return base.endswith(_EXECUTION_LOG) or f"{_EXECUTION_LOG}_" in base


def file_hash(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file's content, read in :data:`CHUNK_SIZE` chunks.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb", buffering=0) as reader:
        return _hash_stream(reader, os.fstat(reader.fileno()).st_size + 1)


def copy_with_hash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Copy ``src`` to ``dst`` and return the SHA-256 hex digest of the content.

    The digest is that of the bytes written, read back from the copy. The copy is written to a
    temporary file beside ``dst`` and renamed over it, so a copy killed half-way never leaves a
    truncated ``dst`` (an existing ``dst`` stays intact until the rename). Parent folders of
    ``dst`` are created and the permission bits of ``src`` are kept.

    When ``dst`` is already a regular file with the same size, permission bits and content, it
    is left untouched (its modification time too) and the source is only read: getting unchanged
    data again costs a read, and concurrent steps getting the same file never rewrite it under
    each other. Raises ``OSError`` when either side fails.
    """
    target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Open the source first so that a missing source leaves no temporary file behind.
    with open(src, "rb", buffering=0) as reader:
        source = os.fstat(reader.fileno())
        digest = _hash_if_identical(reader, source, target)
        if digest is not None:
            return digest
        reader.seek(0)
        mode = stat.S_IMODE(source.st_mode)
        return _copy_to_temporary_then_rename(reader, mode, target, source.st_size + 1)


def _hash_if_identical(reader: io.FileIO, source: os.stat_result, target: Path) -> str | None:
    """The source's digest when ``target`` already holds the same bytes, else ``None``.

    Compares chunk by chunk and gives up at the first difference, so a changed file costs at
    most one extra partial read before it is copied.
    """
    try:
        existing = os.lstat(target)
    except OSError:
        return None
    if not stat.S_ISREG(existing.st_mode) or existing.st_size != source.st_size:
        return None
    if stat.S_IMODE(existing.st_mode) != stat.S_IMODE(source.st_mode):
        return None
    if (existing.st_dev, existing.st_ino) == (source.st_dev, source.st_ino):
        return _hash_stream(reader, source.st_size + 1)
    digest = hashlib.sha256()
    # Small files are the common case: don't allocate (and fault in) two full chunks for them.
    length = min(CHUNK_SIZE, source.st_size + 1)
    ours, theirs = bytearray(length), bytearray(length)
    view = memoryview(ours)
    with open(target, "rb", buffering=0) as other:
        while size := _read_full(reader, ours):
            if _read_full(other, theirs) != size:
                return None
            # bytearray equality is a memcmp; comparing memoryviews goes element by element.
            same = ours == theirs if size == length else ours[:size] == theirs[:size]
            if not same:
                return None
            digest.update(view[:size])
        if other.read(1):
            return None
    return digest.hexdigest()


def _copy_to_temporary_then_rename(
    reader: io.FileIO, mode: int, target: Path, size_hint: int = CHUNK_SIZE
) -> str:
    """Copy into a temporary file beside ``target``, hash the copy, rename it into place.

    The bytes move inside the kernel, then the copy is hashed while it is still in the page
    cache: on Linux that is faster than hashing and writing from Python in one pass (user-space
    writes of a large file are throttled harder), and the digest is by construction that of the
    bytes stored, even if the source changes meanwhile.
    """
    with _replacing(target, mode) as copy:
        _copy_bytes(reader, copy)
        copy.seek(0)
        digest = _hash_stream(copy, size_hint)
        # The umask may have taken bits away; keep the source's, as shutil.copy does.
        if stat.S_IMODE(os.fstat(copy.fileno()).st_mode) != mode:
            os.fchmod(copy.fileno(), mode)
    return digest


#: Whether ``os.sendfile`` copies between regular files here (Linux; macOS only sends to sockets).
_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile")
_SENDFILE_BLOCK = 1024**3


def _copy_bytes(reader: io.FileIO, writer: io.FileIO) -> None:
    """Every byte of ``reader`` (from its start) appended to ``writer``."""
    if _SENDFILE:
        offset = 0
        try:
            while sent := os.sendfile(writer.fileno(), reader.fileno(), offset, _SENDFILE_BLOCK):
                offset += sent
            return
        except OSError:
            # Some file systems refuse sendfile; start over in user space if nothing was sent.
            if offset:
                raise
    reader.seek(0)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    while size := reader.readinto(buffer):
        writer.write(view[:size])


@contextlib.contextmanager
def _replacing(target: Path, mode: int) -> Iterator[io.FileIO]:
    """A new file beside ``target``, open for reading and writing, renamed over it on success.

    Created exclusively with ``mode`` at once (less the umask), which saves the ``chmod`` that
    ``tempfile.mkstemp``'s 0600 would need. If the block raises, the file is removed and
    ``target`` is left as it was: never a partial file under its name.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}{_PARTIAL_SUFFIX}"))
        try:
            handle = os.open(name, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with open(handle, "r+b", buffering=0) as temporary:
            yield temporary
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _read_full(reader: io.FileIO, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``reader`` unless the end comes first; return the bytes read."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        size = reader.readinto(view[filled:])
        if not size:
            break
        filled += size
    return filled


def _hash_stream(reader: io.FileIO, size_hint: int = CHUNK_SIZE) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(max(1, min(CHUNK_SIZE, size_hint)))
    view = memoryview(buffer)
    # Unbuffered reads into one reused buffer: no per-chunk allocation, no double copy.
    while size := reader.readinto(buffer):
        digest.update(view[:size])
    return digest.hexdigest()


def safe_relative(path: str, what: str, run_id: str) -> str:
    """``path`` normalised to a relative POSIX path that stays inside its folder.

    Raises ``CatalogError`` for an empty or absolute path or one whose ``..`` segments climb out.
    """
    if not path or "\0" in path:
        raise CatalogError(f"Refusing {what} {path!r} of run {run_id!r}: it is empty or invalid")
    if os.path.isabs(path) or PurePosixPath(path).is_absolute() or PureWindowsPath(path).drive:
        raise CatalogError(
            f"Refusing {what} {path!r} of run {run_id!r}: it must be relative to its folder"
        )
    normalised = posixpath.normpath(path)
    if normalised == ".." or normalised.startswith("../"):
        raise CatalogError(
            f"Refusing {what} {path!r} of run {run_id!r}: it escapes its folder through '..'"
        )
    return normalised


def check_destination(
    target: Path, root: Path, what: str, run_id: str, resolved: dict[Path, Path] | None = None
) -> None:
    """Refuse to write ``target`` when an existing folder on its way links outside ``root``.

    ``root`` must be resolved. Only the parent is resolved: when ``target`` itself is a link,
    ``os.replace`` swaps the link and never writes through it. ``resolved`` caches resolved
    folders across the files of one transfer (many files share a folder).
    """
    parent = _resolved_folder(target.parent, {} if resolved is None else resolved)
    if not parent.is_relative_to(root):
        raise CatalogError(
            f"Refusing {what} of run {run_id!r}: {target} lies in {parent}, outside {root}"
        )


def glob_files(
    root: Path,
    pattern: str,
    run_id: str,
    skip: Callable[[str, Path], bool] | None = None,
) -> dict[str, Path]:
    """Regular files under ``root`` (resolved) matching ``pattern``, by POSIX path relative to it.

    ``skip`` gets the relative name and the resolved path of each match. A match resolving
    outside ``root`` (through a link) refuses the whole transfer: copying the other files would
    hide that the step asked for something it must not have. Raises ``CatalogError``.
    """
    relative = safe_relative(pattern, "pattern", run_id)
    try:
        candidates = sorted(root.glob(relative))
    except (ValueError, OSError) as exc:
        raise CatalogError(f"Cannot glob pattern {pattern!r} in {root}: {exc}") from exc
    found: dict[str, Path] = {}
    folders: dict[Path, Path] = {}
    for candidate in candidates:
        resolved = _resolved_file(candidate, folders)
        # None for folders, broken links and fifos (reading one would hang).
        if resolved is None:
            continue
        name = candidate.relative_to(root).as_posix()
        if skip is not None and skip(name, resolved):
            continue
        if not resolved.is_relative_to(root):
            raise CatalogError(
                f"Refusing pattern {pattern!r} of run {run_id!r}: it matched {candidate}, "
                f"which resolves to {resolved}, outside {root}"
            )
        found[name] = candidate
    return found


def _resolved_file(candidate: Path, folders: dict[Path, Path]) -> Path | None:
    """The real path of ``candidate`` when it is (or links to) a regular file, else ``None``.

    Folders are resolved once per transfer through ``folders``: a match that is not a link
    itself lies where its folder really is, which saves resolving every file of a large glob.
    """
    try:
        mode = os.lstat(candidate).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        resolved = candidate.resolve()
        return resolved if resolved.is_file() else None
    if not stat.S_ISREG(mode):
        return None
    return _resolved_folder(candidate.parent, folders) / candidate.name


def _resolved_folder(folder: Path, cache: dict[Path, Path]) -> Path:
    """``folder.resolve()``, once per folder for as long as ``cache`` is kept."""
    resolved = cache.get(folder)
    if resolved is None:
        resolved = cache[folder] = folder.resolve()
    return resolved


def check_run_id(run_id: str) -> None:
    # The run id becomes a folder name; one that is not a single plain segment could escape.
    if not run_id or run_id in (".", "..") or any(char in run_id for char in ("/", "\\", "\0")):
        raise CatalogError(f"Run id {run_id!r} cannot name a catalog folder")


# --------------------------------------------------------------------------------------------------
# do-nothing
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# file-system
# --------------------------------------------------------------------------------------------------


class FileSystemCatalog(BaseCatalog):
    """A catalog in a local (or mounted) folder: ``<catalog_location>/<run_id>/<path>``.

    ``<path>`` is the file's path relative to the compute data folder, so the run folder mirrors
    the project; execution logs and ``put_file`` files sit at ``<run_id>/<catalog_name>``. Relative
    locations are taken from the working directory at the time of each call.
    """

    service_name: ClassVar[str] = "file-system"

    catalog_location: str = ".catalog"

    @property
    def location(self) -> str:
        """The configured ``catalog_location``, as written in the configuration."""
        return self.catalog_location

    def _catalog_root(self) -> Path:
        return Path(self.catalog_location).resolve()

    def _run_folder(self, run_id: str) -> Path:
        check_run_id(run_id)
        return self._catalog_root() / run_id

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

        def skip(relative: str, _resolved: Path) -> bool:
            return is_execution_log(relative) or relative.endswith(_PARTIAL_SUFFIX)

        matches = glob_files(run_folder, name, run_id, skip)
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
        for relative, source in matches.items():
            target = destination / relative
            try:
                check_destination(target, destination, f"getting {name!r}", run_id, folders)
                data_hash = copy_with_hash(source, target)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot get {relative!r} of run {run_id!r} into {destination}: {exc}"
                ) from exc
            records.append(self.catalog_record(relative, run_id, data_hash, "get"))
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
        for relative, source in matches.items():
            record = self.catalog_record(relative, run_id, "", "put")
            key = (relative, record.catalog_relative_path)
            try:
                if key in synced_paths:
                    # Hashing first costs a read but saves the write when nothing changed.
                    record.data_hash = file_hash(source)
                    if (*key, record.data_hash) in synced:
                        records.append(record)
                        continue
                record.data_hash = self._store(
                    source, run_folder / relative, run_folder, run_id, folders
                )
            except OSError as exc:
                raise CatalogError(
                    f"Cannot put {relative!r} from {source_root} into the catalog of run "
                    f"{run_id!r} at {run_folder}: {exc}"
                ) from exc
            records.append(record)
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

        ``folders`` caches resolved folders across the files of one transfer.
        """
        run_folder.mkdir(parents=True, exist_ok=True)
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
        """Write ``data`` straight to ``<run_id>/<catalog_name>`` (through a temporary file)."""
        relative = safe_relative(catalog_name, "catalog name", run_id)
        run_folder = self._run_folder(run_id)
        target = run_folder / relative
        try:
            run_folder.mkdir(parents=True, exist_ok=True)
            check_destination(target, run_folder, f"putting {catalog_name!r}", run_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Created like any new file (0666 less the umask), then renamed into place.
            with _replacing(target, 0o666) as writer:
                writer.write(data)
        except OSError as exc:
            raise CatalogError(
                f"Cannot put {catalog_name!r} into the catalog of run {run_id!r} at "
                f"{run_folder}: {exc}"
            ) from exc
        return self.catalog_record(relative, run_id, hashlib.sha256(data).hexdigest(), "put")

    def sync_between_runs(self, previous_run_id: str, run_id: str) -> None:
        """Copy the previous run's catalog folder (without execution logs) into this run's."""
        previous = self._run_folder(previous_run_id)
        current = self._run_folder(run_id)
        if not previous.is_dir():
            return  # the original put nothing in the catalog
        if previous == current:
            return

        def skip(relative: str, _resolved: Path) -> bool:
            return is_execution_log(relative) or relative.endswith(_PARTIAL_SUFFIX)

        folders: dict[Path, Path] = {}
        for relative, source in glob_files(previous, "**/*", previous_run_id, skip).items():
            try:
                self._store(source, current / relative, current, run_id, folders)
            except OSError as exc:
                raise CatalogError(
                    f"Cannot sync {relative!r} from the catalog of run {previous_run_id!r} into "
                    f"run {run_id!r} at {current}: {exc}"
                ) from exc
