"""Where a task's output waits until its step stores it in the catalog as the execution log."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from magnus.catalog import BaseCatalog
    from magnus.runlog.models import DataCatalog

#: Characters kept in memory before the log moves to a temporary file.
MEMORY_LIMIT = 4 * 1024 * 1024

# Tasks may print anything, lone surrogates included: the log must never fail the step.
_ERRORS = "backslashreplace"


class ExecutionLog(io.TextIOBase):
    """A task's output: in memory while small, in a temporary file once it is large.

    Most steps print little, and a file per step would cost more than the step; a chatty step
    never fills memory, because past ``limit`` characters everything moves to a temporary file.
    """

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        super().__init__()
        self._limit = limit
        self._memory: io.StringIO | None = io.StringIO()
        self._size = 0
        self._file: IO[str] | None = None
        self._path: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._memory is not None:
            self._size += len(text)
            if self._size <= self._limit:
                return self._memory.write(text)
            self._spill()
        assert self._file is not None
        return self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    @property
    def on_disk(self) -> bool:
        """Whether the log outgrew memory."""
        return self._file is not None

    def _spill(self) -> None:
        assert self._memory is not None
        handle, self._path = tempfile.mkstemp(prefix="magnus-", suffix=".execution.log")
        self._file = open(handle, "w", encoding="utf-8", errors=_ERRORS)  # noqa: SIM115
        self._file.write(self._memory.getvalue())
        self._memory = None

    def store(self, catalog: BaseCatalog, name: str, run_id: str) -> DataCatalog:
        """Put the log into ``catalog`` as ``<run_id>/<name>``; the record of it."""
        if self._memory is not None:
            data = self._memory.getvalue().encode("utf-8", _ERRORS)
            return catalog.put_data(data, name, run_id)
        assert self._file is not None and self._path is not None
        self._file.close()
        return catalog.put_file(Path(self._path), name, run_id)

    def discard(self) -> None:
        """Free the memory or remove the temporary file: after storing, or instead of it."""
        self._memory = None
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            self._path = None
