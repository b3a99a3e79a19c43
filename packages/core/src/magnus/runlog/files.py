"""File helpers shared by the file-based run-log stores.

Every write goes to a temporary file in the destination folder and is then renamed over the
record: a reader sees either the old or the new record, never half of one, and a process killed
mid-write leaves at worst a stray temporary file (dot-named, ignored by the stores).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from magnus.exceptions import RunLogStoreError

ModelT = TypeVar("ModelT", bound=BaseModel)

# Characters kept as they are in file names; everything else is percent-encoded. ``%`` cannot
# occur in magnus names, so decoding is unambiguous.
_SAFE = " -_."
# Separates an encoded name from its capital-letter mask (``^`` itself is always encoded).
_CASE_MARK = "^"


def encode_name(name: str) -> str:
    """A file-name-safe form of a step, branch or parameter name, unique even where case is not.

    On case-insensitive file systems (macOS, Windows) ``Foo`` and ``foo`` would be one file, so a
    name with ASCII capitals gets a suffix ``^<hex bitmask of their positions>``; names without
    capitals (the usual case) stay readable as they are.
    """
    if _LOWER_PLAIN.fullmatch(name):
        return name  # what most names are: nothing to encode, no capital to mark
    mask = sum(1 << i for i, char in enumerate(name) if "A" <= char <= "Z")
    encoded = quote(name, safe=_SAFE)
    return f"{encoded}{_CASE_MARK}{mask:x}" if mask else encoded


# What ``quote`` keeps as it is (with _SAFE), less the capitals: such a name is its own encoding.
_LOWER_PLAIN = re.compile(r"[a-z0-9 _.~-]*")


def decode_name(encoded: str) -> str:
    """The inverse of :func:`encode_name` (the file system keeps the case it was given)."""
    return unquote(encoded.partition(_CASE_MARK)[0])


def encode_run_id(run_id: str) -> str:
    """The file or folder name of a run.

    No case mask here: on a case-insensitive file system two ids differing only in case meet the
    existing log and creation is refused, which loses nothing.
    """
    encoded = quote(run_id, safe=_SAFE)
    if encoded in ("", ".", ".."):
        raise RunLogStoreError(f"{run_id!r} cannot be used as a run id")
    return encoded


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) or explain why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunLogStoreError(
            f"Cannot create the run log folder {folder}: {exc.strerror or exc}"
        ) from exc


def encode_json(
    data: Any, where: str, indent: int | None = 4, exclude: set[str] | None = None
) -> bytes:
    """``data`` (pydantic models allowed) as UTF-8 JSON; ``RunLogStoreError`` naming ``where``
    for a value that is not JSON. Without ``indent``, on one line; ``exclude``: fields of a
    model left out."""
    try:
        # pydantic's serialiser writes the same JSON as json.dumps(indent=4), several times as
        # fast (non-ASCII text is written as UTF-8 rather than escaped); NaN and infinities as
        # the NaN/Infinity tokens json reads back.
        return to_json(data, indent=indent, exclude=exclude, inf_nan_mode="constants")
    except (TypeError, ValueError) as exc:
        raise RunLogStoreError(
            f"Cannot write {where}: a value is not JSON serialisable: {exc}"
        ) from exc


def json_parts(data: Any, where: str) -> Iterator[bytes]:
    """``data`` as JSON on one line, in parts: a model's fields that hold a dict of models (a
    run's steps, a step's branches) are written entry by entry, after its other fields.

    The JSON of a whole run (20 MB for a map over 10,000 elements) is then never in memory at
    once, only that of one record. The order of a model's fields does not matter to readers.
    """
    nested = (
        [
            name
            for name, value in data.__dict__.items()
            if isinstance(value, dict)
            and value
            and isinstance(next(iter(value.values())), BaseModel)
        ]
        if isinstance(data, BaseModel)
        else []
    )
    if not nested:
        yield encode_json(data, where, indent=None)
        return
    own = encode_json(data, where, indent=None, exclude=set(nested))
    yield own[:-1]  # without its closing brace
    for number, name in enumerate(nested):
        separator = b"" if number == 0 and own == b"{}" else b","
        yield separator + encode_json(name, where, indent=None) + b":{"
        for index, (key, value) in enumerate(getattr(data, name).items()):
            yield (b"," if index else b"") + encode_json(key, where, indent=None) + b":"
            yield from json_parts(value, where)
        yield b"}"
    yield b"}"


def write_json(path: Path, data: Any, indent: int | None = 4) -> None:
    """Atomically replace ``path`` with ``data`` (pydantic models allowed) as indented JSON
    (without ``indent``, on one line and written in parts: :func:`json_parts`)."""
    where = str(path)
    parts = json_parts(data, where) if indent is None else iter([encode_json(data, where, indent)])
    # A unique name per writer, so concurrent writers of one record never share a temp file;
    # os.open (unlike mkstemp) honours the umask, keeping the log readable by other users.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                for part in parts:
                    handle.write(part)
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise RunLogStoreError(
            f"Cannot write {path} in the run log folder {path.parent}: {exc.strerror or exc}"
        ) from exc


def read_json(path: Path | str) -> Any:
    """The parsed content of ``path``; ``FileNotFoundError`` passes through for the caller."""
    try:
        # Bytes to json.loads (which reads UTF-8): a third cheaper than a text file's decoding.
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunLogStoreError(f"The run log record {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise RunLogStoreError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def validate(path: Path, model: type[ModelT], data: Any) -> ModelT:
    """``data`` read from ``path`` as a ``model``; a record of the wrong shape names the file."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RunLogStoreError(
            f"The run log record {path} is not a valid {model.__name__}: {exc}"
        ) from exc


class ExclusiveLock:
    """An exclusive ``flock`` on a file, held for a ``with`` block (see :func:`exclusive_lock`).

    A class rather than a generator: every record a store writes takes one.
    """

    __slots__ = ("_fd", "_missing", "_path")

    def __init__(self, path: str | Path, missing: Callable[[], Exception] | None) -> None:
        self._path = path
        self._missing = missing
        self._fd = -1

    def __enter__(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if self._missing is not None and isinstance(exc, FileNotFoundError):
                raise self._missing() from None
            raise RunLogStoreError(
                f"Cannot open the lock file {self._path}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, *exc_info: object) -> None:
        # Closing the descriptor releases the lock, also when the block raised.
        os.close(self._fd)


def exclusive_lock(
    path: str | Path, missing: Callable[[], Exception] | None = None
) -> ExclusiveLock:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the ``with`` block.

    Not re-entrant: a process already holding the lock through another descriptor would wait
    for itself, so locked sections never call each other. When the folder of ``path`` does not
    exist, ``missing`` (if given) makes the error to raise: the caller knows what that means.
    """
    return ExclusiveLock(path, missing)
