"""The PROCESSING record of a leaf step, written only when the step lasts long enough to matter.

A step's log is stored when the step ends. Storing it also as it starts shows where a run is (and
where a killed run stopped), but most steps take milliseconds, and a second write of every step
log was a large part of what a step cost. So the starting record is written by a timer, after
:data:`PROCESSING_RECORD_DELAY` seconds, unless the step has ended by then; if the step fails
in an unexpected way first, it is written at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from magnus.runlog.models import FAIL

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.runlog.models import StepLog

logger = logging.getLogger(__name__)

#: Seconds a leaf step runs before its PROCESSING record is stored.
PROCESSING_RECORD_DELAY = 0.5

_pending: ContextVar[PendingRecord | None] = ContextVar("magnus_pending_record", default=None)


class PendingRecord:
    """A step log's PROCESSING record, stored by a timer unless the step ends first."""

    def __init__(self, context: RunContext, step_log: StepLog, delay: float) -> None:
        self._context = context
        # The step mutates its log while the timer may be writing: write a copy of the start.
        # Shallow, with its own containers: the step appends to them and assigns fields, but
        # leaves alone what they held when it started, and a deep copy per step costs too much.
        self._snapshot = step_log.model_copy(
            update={
                "attempts": list(step_log.attempts),
                "data_catalog": list(step_log.data_catalog),
                "code_identities": list(step_log.code_identities),
                "user_defined_metrics": dict(step_log.user_defined_metrics),
            }
        )
        self._lock = threading.Lock()
        self.done = False
        _timers.add(time.monotonic() + delay, self)

    def write(self) -> None:
        """Store the PROCESSING record now, unless the final one was (or is being) stored."""
        with self._lock:
            if self.done:
                return
            self.done = True
            try:
                self._context.run_log_store.add_step_log(self._snapshot, self._context.run_id)
            except Exception as exc:  # the final write will surface a broken store
                logger.warning(
                    "Could not record that step %s started: %s", self._snapshot.internal_name, exc
                )

    def settle(self) -> None:
        """The final record is about to be stored: the PROCESSING one must not follow it.

        Waits for a write in progress, so the final record always lands last.
        """
        with self._lock:
            self.done = True


class _Timers:
    """One thread per process writes the records that come due, in order of their time.

    A thread per step (``threading.Timer``) cost more to start than a short step costs in all;
    a step now only puts its record in a heap, and a record that settles first is dropped when
    it comes due.
    """

    def __init__(self) -> None:
        self._pid = 0
        self._due: list[tuple[float, int, PendingRecord]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()

    def add(self, when: float, record: PendingRecord) -> None:
        with _starting:
            if self._pid != os.getpid():
                # First use, or a forked child: the parent's thread and waiters are not here.
                self._pid = os.getpid()
                self._due = []
                self._changed = threading.Condition()
                thread = threading.Thread(target=self._run, name="magnus-records", daemon=True)
                thread.start()
        with self._changed:
            heapq.heappush(self._due, (when, next(self._order), record))
            if self._due[0][2] is record:  # sooner than what the thread waits for
                self._changed.notify()

    def _run(self) -> None:
        changed, due = self._changed, self._due
        while True:
            with changed:
                while True:
                    while due and due[0][2].done:
                        heapq.heappop(due)
                    if not due:
                        changed.wait()
                        continue
                    wait = due[0][0] - time.monotonic()
                    if wait <= 0:
                        record = heapq.heappop(due)[2]
                        break
                    changed.wait(wait)
            record.write()


_starting = threading.Lock()
_timers = _Timers()


@contextlib.contextmanager
def processing_record(
    context: RunContext, step_log: StepLog, delay: float = PROCESSING_RECORD_DELAY
) -> Iterator[None]:
    """Around a leaf step: its PROCESSING record is stored if it lasts beyond ``delay``.

    When the block raises (magnus itself failed, or the run was interrupted), the record is
    stored at once if nothing was, so the run log still shows where the run stopped.

    A store that is not persistent (``buffered``) gets the record at once: writing to memory
    costs little, and its objects are not meant to be changed from two threads.
    """
    if not context.run_log_store.persistent:
        context.run_log_store.add_step_log(step_log, context.run_id)
        yield
        return
    pending = PendingRecord(context, step_log, delay)
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        pending.write()
        raise
    finally:
        pending.settle()
        _pending.reset(token)


def write_pending_now() -> None:
    """Store the running step's PROCESSING record now, if it is still pending.

    For whoever reads the run log from inside a step: the step must already be in it.
    """
    pending = _pending.get()
    if pending is not None:
        pending.write()


def store_final_step_log(
    context: RunContext, step_log: StepLog, run_parameters: dict[str, Any] | None = None
) -> None:
    """Store a leaf step's final log, with the ``run_parameters`` it produced for the run (both
    at once); a PROCESSING record still pending is dropped first.

    If the store refuses the final record, the step is recorded FAIL saying so, where the store
    still takes that: a step that ran never goes missing from the run log.
    """
    pending = _pending.get()
    if pending is not None:
        pending.settle()
    store = context.run_log_store
    try:
        if run_parameters:
            store.add_step_log_and_parameters(step_log, context.run_id, run_parameters)
        else:
            store.add_step_log(step_log, context.run_id)
    except Exception as exc:
        unrecorded = step_log.model_copy(
            update={"status": FAIL, "message": f"magnus could not record how the step ended: {exc}"}
        )
        with contextlib.suppress(Exception):
            context.run_log_store.add_step_log(unrecorded, context.run_id)
        raise
