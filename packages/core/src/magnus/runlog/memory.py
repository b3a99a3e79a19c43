"""Run-log logic on in-memory :class:`RunLog` trees, shared by the built-in stores.

``WholeRunLogStore`` implements the whole store contract for stores that keep each run as one
complete ``RunLog`` (``buffered`` in a dict, ``file-system`` in one JSON file); a subclass only
says how to read, change, create and replace one run.

Replacing a step or branch log replaces that record's own fields only: the branches of a step and
the steps of a branch are written by their own ``add_*`` calls and are kept. This is what lets the
chunked store update a composite step in O(1), and every store must agree with it.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from magnus.exceptions import BranchLogNotFoundError, StepLogNotFoundError
from magnus.runlog.base import BaseRunLogStore, parent_branch_name, parent_step_name
from magnus.runlog.models import (
    PROCESSING,
    TERMINAL_STATUSES,
    UNREADABLE,
    BranchLog,
    RunLog,
    StepLog,
)


def new_run_log(
    run_id: str,
    dag_hash: str,
    use_cached: bool,
    tag: str,
    original_run_id: str,
    status: str,
    start_time: str,
) -> RunLog:
    """The record ``create_run_log`` stores."""
    return RunLog(
        run_id=run_id,
        dag_hash=dag_hash,
        use_cached=use_cached,
        tag=tag,
        original_run_id=original_run_id,
        status=status,
        start_time=start_time,
    )


def set_status(run_log: RunLog, status: str, now: str, message: str = "") -> None:
    """Set the run's status (and why, when given), stamping ``end_time`` when it is final."""
    run_log.status = status
    if message:
        run_log.message = message
    if status in TERMINAL_STATUSES:
        run_log.end_time = now


def unreadable_run(run_id: str, error: Exception) -> RunLog:
    """What ``list_runs`` gives for a run whose records cannot be read, instead of failing.

    One corrupt run must not hide every other run from ``magnus runs list``; it is listed with
    status UNREADABLE and the reason as its message.
    """
    return RunLog(run_id=run_id, status=UNREADABLE, message=str(error))


def without_steps(run_log: RunLog) -> RunLog:
    """An independent copy of the run-level fields and parameters, ``steps`` left empty."""
    # Emptying steps before the deep copy avoids copying the whole tree only to drop it.
    return copy.deepcopy(run_log.model_copy(update={"steps": {}}))


def sort_runs(runs: Iterable[RunLog]) -> list[RunLog]:
    """Runs oldest first (the time format sorts as text), ties broken by run id."""
    return sorted(runs, key=lambda run: (run.start_time, run.run_id))


def find_step(run_log: RunLog, internal_name: str) -> StepLog:
    """The step log named ``internal_name`` in the tree (not a copy)."""
    try:
        return run_log.search_step_by_internal_name(internal_name)
    except KeyError:
        raise StepLogNotFoundError(run_log.run_id, internal_name) from None


def find_branch(run_log: RunLog, internal_branch_name: str) -> BranchLog | RunLog:
    """The branch log named ``internal_branch_name`` (``""``: the run itself), not a copy."""
    if not internal_branch_name:
        return run_log
    try:
        step = run_log.search_step_by_internal_name(parent_step_name(internal_branch_name))
    except KeyError:
        raise BranchLogNotFoundError(run_log.run_id, internal_branch_name) from None
    branch = step.branches.get(internal_branch_name)
    if branch is None:
        raise BranchLogNotFoundError(run_log.run_id, internal_branch_name)
    return branch


def place_step(run_log: RunLog, step_log: StepLog) -> None:
    """Insert a copy of ``step_log`` under its parent branch, or replace its own fields."""
    container = find_branch(run_log, parent_branch_name(step_log.internal_name))
    existing = container.steps.get(step_log.internal_name)
    stored = copy.deepcopy(step_log.model_copy(update={"branches": {}}))
    if existing is not None:
        stored.branches = existing.branches
    # Assigning to an existing key keeps its position: a replaced step keeps its place.
    container.steps[step_log.internal_name] = stored


def place_branch(run_log: RunLog, branch_log: BranchLog) -> None:
    """Insert a copy of ``branch_log`` under its parent step, or replace its own fields."""
    step = find_step(run_log, parent_step_name(branch_log.internal_name))
    existing = step.branches.get(branch_log.internal_name)
    stored = copy.deepcopy(branch_log.model_copy(update={"steps": {}}))
    if existing is not None:
        stored.steps = existing.steps
    step.branches[branch_log.internal_name] = stored


class WholeRunLogStore(BaseRunLogStore):
    """Base of stores keeping each run as one complete ``RunLog``.

    Everything handed out is a copy, so changing a returned log never changes the store.
    """

    @abstractmethod
    def _read(self, run_id: str) -> RunLog:
        """The stored run (``RunLogNotFoundError`` if absent); callers must not change it."""

    @abstractmethod
    def _modify(self, run_id: str) -> AbstractContextManager[RunLog]:
        """The stored run to change inside the ``with`` block; saved if the block succeeds."""

    @abstractmethod
    def _create(self, run_log: RunLog) -> None:
        """Store a new run; ``RunLogExistsError`` if its id is taken."""

    @abstractmethod
    def _replace(self, run_log: RunLog) -> None:
        """Store ``run_log`` (the store may keep the object) whether or not the run exists."""

    @abstractmethod
    def _stored_runs(self) -> Iterable[RunLog]:
        """Every stored run; callers must not change them."""

    # ------------------------------------------------------------------ runs

    def create_run_log(
        self,
        run_id: str,
        dag_hash: str = "",
        use_cached: bool = False,
        tag: str = "",
        original_run_id: str = "",
        status: str = PROCESSING,
    ) -> RunLog:
        run_log = new_run_log(
            run_id, dag_hash, use_cached, tag, original_run_id, status, self.now()
        )
        self._create(run_log.model_copy(deep=True))
        return run_log

    def get_run_log_by_id(self, run_id: str, full: bool = True) -> RunLog:
        stored = self._read(run_id)
        return stored.model_copy(deep=True) if full else without_steps(stored)

    def put_run_log(self, run_log: RunLog) -> None:
        self._replace(run_log.model_copy(deep=True))

    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        with self._modify(run_id) as run_log:
            set_status(run_log, status, self.now(), message)

    def list_runs(self) -> list[RunLog]:
        return sort_runs(without_steps(run) for run in self._stored_runs())

    # ------------------------------------------------------------------ parameters and config

    def get_parameters(self, run_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._read(run_id).parameters)

    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        with self._modify(run_id) as run_log:
            run_log.parameters.update(copy.deepcopy(parameters))

    def get_run_config(self, run_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._read(run_id).run_config)

    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        with self._modify(run_id) as run_log:
            run_log.run_config.update(copy.deepcopy(run_config))

    # ------------------------------------------------------------------ steps and branches

    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        found = find_step(self._read(run_id), internal_name)
        if not full:
            found = found.model_copy(update={"branches": {}})
        return found.model_copy(deep=True)

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        with self._modify(run_id) as run_log:
            place_step(run_log, step_log)

    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        found = find_branch(self._read(run_id), internal_branch_name)
        if not full:
            if isinstance(found, RunLog):
                return without_steps(found)
            found = found.model_copy(update={"steps": {}})
        return found.model_copy(deep=True)

    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        if isinstance(branch_log, RunLog):
            self.put_run_log(branch_log)
            return
        with self._modify(run_id) as run_log:
            place_branch(run_log, branch_log)
