"""Paths in and out of a catalog: which names are safe, which files a glob moves.

A pattern or path that escapes its folder (absolute, ``..``, or through a link) is refused with a
``CatalogError`` naming the run, so a step can never read or write outside the compute data folder
or the catalog.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from magnus.exceptions import CatalogError

_EXECUTION_LOG = ".execution.log"


def is_execution_log(name: str) -> bool:
    """Whether a catalog path names a step's execution log.

    Execution logs are ``<step>.execution.log``, with ``_<value>`` appended per map value
    (``execute.execution.log_10``); only the last path segment is looked at.
    """
    base = name.rsplit("/", 1)[-1]
    return base.endswith(_EXECUTION_LOG) or f"{_EXECUTION_LOG}_" in base


#: A name of one segment that needs no normalising: it starts with neither a dot nor a drive.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


def safe_relative(path: str, what: str, run_id: str) -> str:
    """``path`` normalised to a relative POSIX path that stays inside its folder.

    Raises ``CatalogError`` for an empty or absolute path or one whose ``..`` segments climb out.
    """
    if _PLAIN_NAME.match(path):
        return path  # one plain segment (an execution log's name): nothing to normalise
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
    # Whether a resolved folder lies under root: asked once per folder, not once per file.
    inside: dict[Path, bool] = {}
    # Every match is root joined with a relative path: its name is the rest of the string.
    prefix = len(str(root).rstrip(os.sep)) + 1
    for candidate in candidates:
        resolved = _resolved_file(candidate, folders)
        # None for folders, broken links and fifos (reading one would hang).
        if resolved is None:
            continue
        name = str(candidate)[prefix:]
        if os.sep != "/":
            name = name.replace(os.sep, "/")
        if skip is not None and skip(name, resolved):
            continue
        folder = resolved.parent
        if folder not in inside:
            inside[folder] = folder == root or folder.is_relative_to(root)
        if not inside[folder]:
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
    """Refuse a run id that cannot name one catalog folder (raises ``CatalogError``)."""
    # The run id becomes a folder name; one that is not a single plain segment could escape.
    if not run_id or run_id in (".", "..") or any(char in run_id for char in ("/", "\\", "\0")):
        raise CatalogError(f"Run id {run_id!r} cannot name a catalog folder")
