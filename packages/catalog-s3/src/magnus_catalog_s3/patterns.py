"""Glob patterns matched against object keys the way ``Path.glob`` matches files.

The ``s3`` catalog lists a run's objects and picks the ones a pattern names; a pattern must mean
the same there as for the file-system catalog, which globs a folder on the running Python.
"""

from __future__ import annotations

import functools
import sys
from fnmatch import fnmatchcase

from magnus.catalog import safe_relative
from magnus.exceptions import CatalogError

# Python 3.13 made a trailing "**" match the files below it too; before, it named folders only.
TRAILING_RECURSION_MATCHES_FILES = sys.version_info >= (3, 13)


def pattern_segments(pattern: str, run_id: str, where: str) -> list[str]:
    """``pattern`` made relative and safe (as the file-system catalog does), split in segments."""
    segments = safe_relative(pattern, "pattern", run_id).split("/")
    if not TRAILING_RECURSION_MATCHES_FILES:
        for segment in segments:
            if "**" in segment and segment != "**":
                # Path.glob refuses it the same way before 3.13.
                raise CatalogError(
                    f"Cannot glob pattern {pattern!r} in {where}: '**' can only be an entire "
                    "path component"
                )
    return segments


def glob_matches(name: str, segments: list[str]) -> bool:
    """Whether the POSIX path ``name`` is a file ``Path.glob`` would find for ``segments``.

    ``*``, ``?`` and ``[...]`` stay inside one segment; ``**`` is zero or more whole segments.
    """
    parts = name.split("/")

    @functools.cache
    def match(part: int, segment: int) -> bool:
        if segment == len(segments):
            return part == len(parts)
        wanted = segments[segment]
        if wanted == "**":
            if segment == len(segments) - 1:
                return TRAILING_RECURSION_MATCHES_FILES and part < len(parts)
            return any(match(start, segment + 1) for start in range(part, len(parts)))
        return (
            part < len(parts) and fnmatchcase(parts[part], wanted) and match(part + 1, segment + 1)
        )

    return match(0, 0)
