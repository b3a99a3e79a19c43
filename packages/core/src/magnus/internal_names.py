"""Internal names: where a step sits in nested graphs, and how map values become names.

A step's internal name is a dot path: ``step``, ``parent.branch.step``, and so on, so splitting on
``.`` gives step, branch, step, ..., step. A map's single branch graph is named with the literal
placeholder ``map_variable_placeholder``; when a map element runs, each placeholder (outermost
first) is replaced by the *branch name* of the current value.

Branch names from map values: ``str(value)`` when it matches ``[A-Za-z0-9_-]+``; otherwise every
byte of its UTF-8 form outside that alphabet is written ``~HH`` (two lower-case hex digits), so
``0.5`` becomes ``0~2e5`` and ``with space`` becomes ``with~20space``. ``~`` never appears in a
plain name, so an escaped name cannot collide with a plain one, and neither ``.`` nor ``%`` (which
already mean something in internal names) can appear. The empty string is ``~``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

MAP_PLACEHOLDER = "map_variable_placeholder"
#: The longest file name, in bytes of UTF-8, magnus makes from step, branch, parameter or map
#: value names: file systems allow 255 bytes per path component, and a writer adds up to 40
#: bytes for the temporary file it renames into place.
MAX_FILE_NAME_BYTES = 200
#: Ends the readable prefix of a shortened name; never part of a branch name or an encoded name.
SHORTENED_MARK = "="
_DIGEST_LENGTH = 20
PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_PLAIN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def branch_name_of(value: Any) -> str:
    """The branch name a map element gets, identical in every executor."""
    text = str(value)
    if PLAIN.fullmatch(text):
        return text
    if not text:
        return "~"
    return "".join(
        chr(byte) if byte in _PLAIN_BYTES else f"~{byte:02x}" for byte in text.encode("utf-8")
    )


def resolve(internal_name: str, map_variables: Mapping[str, Any] | None) -> str:
    """Replace each placeholder, outermost first, with the branch name of the current value."""
    if not map_variables or MAP_PLACEHOLDER not in internal_name:
        return internal_name
    resolved = internal_name
    for value in map_variables.values():
        resolved = resolved.replace(MAP_PLACEHOLDER, branch_name_of(value), 1)
    return resolved


def enclosing_branches(resolved_step_name: str) -> list[str]:
    """The branch logs around a step, outermost first (``a.b.c.d.e`` -> ``a.b``, ``a.b.c.d``)."""
    parts = resolved_step_name.split(".")
    return [".".join(parts[:end]) for end in range(2, len(parts), 2)]


def to_command_line(internal_name: str) -> str:
    """Spaces travel as ``%`` through command lines (0.5's convention)."""
    return internal_name.replace(" ", "%")


def from_command_line(name: str) -> str:
    """The inverse of :func:`to_command_line`."""
    return name.replace("%", " ")


def fit_file_name(name: str, limit: int = MAX_FILE_NAME_BYTES) -> str:
    """``name`` itself when it fits in ``limit`` bytes, else a readable prefix and a digest.

    A shortened name is the longest prefix of ``name`` that fits, then ``=`` and 20 hex digits
    of the SHA-256 of the whole name: the same in every process (parallel branches, retries and
    orchestrated steps find the same files), and distinct for distinct names. Every name magnus
    derives from user input and puts on disk goes through here.
    """
    data = name.encode("utf-8")
    if len(data) <= limit:
        return name
    digest = hashlib.sha256(data).hexdigest()[:_DIGEST_LENGTH]
    prefix = data[: limit - len(SHORTENED_MARK) - _DIGEST_LENGTH].decode("utf-8", "ignore")
    return f"{prefix}{SHORTENED_MARK}{digest}"
