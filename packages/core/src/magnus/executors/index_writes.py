"""Fingerprint-index records written beside the run, not in its way.

A successful step's fingerprint is indexed so that later runs can reuse its result
(:func:`magnus.executors.reuse.record_success`). The index keeps a record per fingerprint, and
the elements of a map have a fingerprint each: writing that record while the element waited cost
as much as running a short element. So a persistent store's index records are handed to one
thread per process, which writes them in the order they came while the run goes on.

The index only saves work: a record lost because the process was killed before writing it means
a later run runs that step again. Whatever this process looks up in the index is looked up after
its own records are written (:func:`flush`), and a process that ends normally writes all of them
before it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

from magnus.exceptions import MagnusError, RunLogStoreError

if TYPE_CHECKING:
    from magnus.runlog.base import BaseRunLogStore

logger = logging.getLogger(__name__)

_Record = tuple["BaseRunLogStore", str, str, str]


class _Writer:
    """One thread per process writing the queued index records, in order."""

    def __init__(self) -> None:
        self._pid = 0
        self._queue: deque[_Record] = deque()
        self._writing = 0
        self._changed = threading.Condition()

    def add(self, record: _Record) -> None:
        with _starting:
            if self._pid != os.getpid():
                # First use, or a forked child: the parent's thread is not here.
                self._pid = os.getpid()
                self._queue = deque()
                self._writing = 0
                self._changed = threading.Condition()
                threading.Thread(target=self._run, name="magnus-index", daemon=True).start()
        with self._changed:
            self._queue.append(record)
            self._changed.notify_all()

    def _run(self) -> None:
        changed, queue = self._changed, self._queue
        while True:
            with changed:
                while not queue:
                    changed.wait()
                record = queue.popleft()
                self._writing += 1
            try:
                _write(record)
            finally:
                with changed:
                    self._writing -= 1
                    changed.notify_all()

    def flush(self) -> None:
        """Wait until every record queued so far in this process is written."""
        if self._pid != os.getpid():
            return
        with self._changed:
            while self._queue or self._writing:
                self._changed.wait()


def _write(record: _Record) -> None:
    store, key, run_id, internal_name = record
    try:
        store.record_fingerprint(key, run_id, internal_name)
    except (RunLogStoreError, MagnusError, OSError) as exc:
        logger.warning("Could not index the fingerprint of %s: %s", internal_name, exc)


_starting = threading.Lock()
_writer = _Writer()


def record_fingerprint(store: BaseRunLogStore, key: str, run_id: str, internal_name: str) -> None:
    """Index ``key`` as recorded by step ``internal_name`` of run ``run_id``, soon.

    A store that is not persistent (``buffered``) is written at once: it costs little, and its
    objects are not meant to be changed from two threads.
    """
    record = (store, key, run_id, internal_name)
    if not store.persistent:
        _write(record)
        return
    _writer.add(record)


def flush() -> None:
    """Write every index record this process queued before returning."""
    _writer.flush()


atexit.register(flush)
