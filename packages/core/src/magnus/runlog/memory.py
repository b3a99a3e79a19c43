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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

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

ResultT = TypeVar("ResultT")


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


def place_step(run_log: RunLog, step_log: StepLog, keep: bool = False) -> None:
    """Insert a copy of ``step_log`` under its parent branch, or replace its own fields.

    With ``keep``, ``step_log`` itself is placed (its ``branches`` dropped): the caller made it
    for the tree and holds no other reference.
    """
    container = find_branch(run_log, parent_branch_name(step_log.internal_name))
    existing = container.steps.get(step_log.internal_name)
    if keep:
        stored = step_log
        stored.branches = {}
    else:
        stored = copy.deepcopy(step_log.model_copy(update={"branches": {}}))
    if existing is not None:
        stored.branches = existing.branches
    # Assigning to an existing key keeps its position: a replaced step keeps its place.
    container.steps[step_log.internal_name] = stored


def place_branch(run_log: RunLog, branch_log: BranchLog, keep: bool = False) -> None:
    """Insert a copy of ``branch_log`` under its parent step, or replace its own fields.

    With ``keep``, ``branch_log`` itself is placed (its ``steps`` dropped), as for
    :func:`place_step`.
    """
    step = find_step(run_log, parent_step_name(branch_log.internal_name))
    existing = step.branches.get(branch_log.internal_name)
    if keep:
        stored = branch_log
        stored.steps = {}
    else:
        stored = copy.deepcopy(branch_log.model_copy(update={"steps": {}}))
    if existing is not None:
        stored.steps = existing.steps
    step.branches[branch_log.internal_name] = stored


#: The kinds of :class:`RunChange`.
STATUS_CHANGE = "status"
PARAMETERS_CHANGE = "parameters"
RUN_CONFIG_CHANGE = "run_config"
STEP_CHANGE = "step"
BRANCH_CHANGE = "branch"


@dataclass(frozen=True)
class RunChange:
    """One change to a stored run: what ``add_step_log``, ``set_parameters``... ask for.

    ``value`` is, by ``kind``: a ``StepLog`` or ``BranchLog`` to place; the parameters or
    ``run_config`` keys to merge; ``{"status", "message", "now"}`` for a status.
    """

    kind: str
    value: Any


def apply_change(run_log: RunLog, change: RunChange, keep: bool = False) -> None:
    """Make ``change`` to ``run_log`` in place; ``keep``: place step or branch logs uncopied.

    Every change sets values rather than adding to them, so making a sequence of changes again
    to a run that already has them leaves it as it was (what replaying a journal relies on).
    Whatever is missing (a parent step or branch) raises before anything is changed.
    """
    kind, value = change.kind, change.value
    if kind == STEP_CHANGE:
        place_step(run_log, value, keep)
    elif kind == BRANCH_CHANGE:
        place_branch(run_log, value, keep)
    elif kind == PARAMETERS_CHANGE:
        run_log.parameters.update(value if keep else copy.deepcopy(value))
    elif kind == RUN_CONFIG_CHANGE:
        run_log.run_config.update(value if keep else copy.deepcopy(value))
    elif kind == STATUS_CHANGE:
        set_status(run_log, value["status"], value["now"], value["message"])
    else:
        raise ValueError(f"Unknown run log change {kind!r}")


class WholeRunLogStore(BaseRunLogStore):
    """Base of stores keeping each run as one complete ``RunLog``.

    Everything handed out is a copy, so changing a returned log never changes the store.
    """

    @abstractmethod
    def _view(self, run_id: str, use: Callable[[RunLog], ResultT]) -> ResultT:
        """``use(stored run)`` (``RunLogNotFoundError`` if absent); ``use`` must not change it
        and returns copies of what it hands out."""

    @abstractmethod
    def _change(self, run_id: str, change: RunChange) -> None:
        """Make ``change`` to the stored run (``RunLogNotFoundError`` if absent) and keep it."""

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
        return self._view(
            run_id, lambda stored: stored.model_copy(deep=True) if full else without_steps(stored)
        )

    def put_run_log(self, run_log: RunLog) -> None:
        self._replace(run_log.model_copy(deep=True))

    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        value = {"status": status, "message": message, "now": self.now()}
        self._change(run_id, RunChange(STATUS_CHANGE, value))

    def list_runs(self) -> list[RunLog]:
        return sort_runs(without_steps(run) for run in self._stored_runs())

    # ------------------------------------------------------------------ parameters and config

    def get_parameters(self, run_id: str) -> dict[str, Any]:
        return self._view(run_id, lambda stored: copy.deepcopy(stored.parameters))

    def read_parameters_shared(self, run_id: str) -> dict[str, Any]:
        if not self._reads_parameters_as(WholeRunLogStore):
            return self.get_parameters(run_id)
        # A change replaces a parameter's value, never changes it in place: stored values can
        # be handed out.
        return self._view(run_id, lambda stored: dict(stored.parameters))

    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        self._change(run_id, RunChange(PARAMETERS_CHANGE, parameters))

    def get_run_config(self, run_id: str) -> dict[str, Any]:
        return self._view(run_id, lambda stored: copy.deepcopy(stored.run_config))

    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        self._change(run_id, RunChange(RUN_CONFIG_CHANGE, run_config))

    # ------------------------------------------------------------------ steps and branches

    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        def copied(stored: RunLog) -> StepLog:
            found = find_step(stored, internal_name)
            if not full:
                found = found.model_copy(update={"branches": {}})
            return found.model_copy(deep=True)

        return self._view(run_id, copied)

    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        self._change(run_id, RunChange(STEP_CHANGE, step_log))

    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        def copied(stored: RunLog) -> BranchLog | RunLog:
            found = find_branch(stored, internal_branch_name)
            if not full:
                if isinstance(found, RunLog):
                    return without_steps(found)
                found = found.model_copy(update={"steps": {}})
            return found.model_copy(deep=True)

        return self._view(run_id, copied)

    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        if isinstance(branch_log, RunLog):
            self.put_run_log(branch_log)
            return
        self._change(run_id, RunChange(BRANCH_CHANGE, branch_log))
