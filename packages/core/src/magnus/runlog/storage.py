"""Where a chunked run-log store keeps its records: the small interface a storage implements.

:class:`magnus.runlog.chunked.ChunkedRunLogStore` implements the whole run-log store contract
over a :class:`RecordStorage`; a store for another backend (a database, a remote object store)
only says how to read, write, list and delete the records of a run, and how one record is
changed safely while other processes write the same run.

A record is a small JSON document named, within its run, by a path with ``/`` between folder and
file name: ``RunLog.json``, ``steps/StepLog-train.json``. Run ids are given as they are; the
storage encodes them where it needs to (:func:`magnus.runlog.files.encode_run_id`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class RecordStorage(ABC):
    """The records of runs, grouped by run id.

    Every ``write`` replaces a record atomically: a reader sees the old or the new content, never
    half of it. Reading a record that is not there gives ``None``; any other failure raises
    ``RunLogStoreError`` naming the record (``where``).
    """

    #: The longest file name of a record, in bytes of UTF-8; ``None``: no limit. The store
    #: shortens longer names to a readable prefix and a digest.
    name_limit: ClassVar[int | None] = None
    #: Whether the store keeps a snapshot of each ended run beside its records (one read for
    #: ``runs show``); it is removed, under the run's :meth:`lock`, before every change.
    keeps_snapshots: ClassVar[bool] = False
    #: Whether the store keeps, beside each run's ``RunLog.json``, a summary of it (what ``runs
    #: list`` shows) stamped with :meth:`version`: listing runs then reads the summaries.
    keeps_summaries: ClassVar[bool] = False

    @abstractmethod
    def location(self, run_id: str) -> str:
        """Where the run's records live, for people (a folder, a URL)."""

    @abstractmethod
    def where(self, run_id: str, record: str) -> str:
        """Where one record lives, for messages."""

    @abstractmethod
    def read(self, run_id: str, record: str) -> Any:
        """The record's parsed JSON; ``None`` if there is no such record."""

    def read_shared(self, run_id: str, record: str) -> Any:
        """As :meth:`read`, but the same parsed object may be given again while the record is
        unchanged (the caller never changes it); override where telling that is cheaper than
        reading the record."""
        return self.read(run_id, record)

    def version(self, run_id: str, record: str) -> str | None:
        """A token that changes whenever the record is replaced, cheaper than reading it;
        ``None`` when the record is not there. Needed where :attr:`keeps_summaries` is set."""
        return None

    def exists(self, run_id: str, record: str) -> bool:
        """Whether the record exists (override when that is cheaper than reading it)."""
        return self.read(run_id, record) is not None

    @abstractmethod
    def write(self, run_id: str, record: str, data: Any) -> None:
        """Replace the record with ``data`` (JSON values, pydantic models allowed), atomically.

        A value that cannot be written as JSON raises ``RunLogStoreError`` and writes nothing.
        """

    def write_many(self, run_id: str, records: list[tuple[str, Any]]) -> None:
        """Replace each ``(record, data)`` in turn; a storage that can writes them at once."""
        for record, data in records:
            self.write(run_id, record, data)

    @abstractmethod
    def names(self, run_id: str, folder: str, prefix: str = "") -> list[str]:
        """The file names in the run's ``folder`` that start with ``prefix`` (none: ``[]``).

        The store filters what it gets, so a storage may return more names than asked for.
        """

    @abstractmethod
    def delete(self, run_id: str, records: Sequence[str]) -> None:
        """Remove the records; one already gone is not an error."""

    @abstractmethod
    def run_ids(self) -> list[str]:
        """The ids of the runs that may be stored (each is checked for its ``RunLog.json``)."""

    def make_run(self, run_id: str, folders: Iterable[str]) -> None:
        """Make room for a run's records (its folders); nothing to do for most storages."""
        return None

    def reading(self, run_id: str) -> AbstractContextManager[None]:
        """Many records of the run are about to be read (a whole run, a composite's branches):
        a storage may look for changes once, as the block starts, rather than at every record,
        so that the records read agree with each other. The default does nothing."""
        return nullcontext()

    def lock(self, run_id: str) -> AbstractContextManager[None]:
        """Hold off other writers of the run for the ``with`` block (not re-entrant).

        Needed where replacing a chunk means reading its stamp first and several processes
        write one run. Without it (the default), :meth:`create` and :meth:`update` must be
        overridden with conditional writes; a missing run may raise ``RunLogNotFoundError``.
        """
        return nullcontext()

    def create(self, run_id: str, record: str, data: Any) -> bool:
        """Write the record unless it exists, against other creators; ``False`` if it existed."""
        with self.lock(run_id):
            if self.exists(run_id, record):
                return False
            self.write(run_id, record, data)
            return True

    def update(self, run_id: str, record: str, change: Callable[[Any], Any]) -> None:
        """Replace the record with ``change(current)`` (``None`` if absent), losing no update.

        ``change`` may raise to give up; it may be called more than once.
        """
        with self.lock(run_id):
            self.write(run_id, record, change(self.read(run_id, record)))

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT]) -> list[ResultT]:
        """The results of ``function`` over ``items``, in order; a remote storage may run several
        at once (the store calls it to read or write many records)."""
        return [function(item) for item in items]
