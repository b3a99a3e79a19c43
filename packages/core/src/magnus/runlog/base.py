"""The run-log store contract.

Every store keeps runs by run id. A run log is a tree: run -> steps -> branches -> steps ... Step
and branch logs are addressed by their *resolved internal names* (``train.left.fit``,
``report.10``); a step log belongs to the branch named by its internal name minus the last
segment (no segment left: the run itself), and a branch log to the step named likewise.

Rules every store follows (``magnus.testing.RunLogStoreContract`` checks them):

* every write is atomic: a reader never sees half a record, and a process killed at any moment
  leaves a log that can be read;
* ``create_run_log`` refuses an existing run id with ``RunLogExistsError``;
* a missing run raises ``RunLogNotFoundError``, a missing step ``StepLogNotFoundError``, a missing
  branch ``BranchLogNotFoundError``;
* ``add_step_log``/``add_branch_log`` insert or replace; insertion order is kept;
* ``set_parameters``/``set_run_config`` merge into what is stored;
* ``update_run_log_status`` stamps ``end_time`` when the status becomes SUCCESS or FAIL;
* ``find_fingerprint`` costs the same whatever the number of runs in the store.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from typing import Any, ClassVar

from magnus.exceptions import RunLogNotFoundError
from magnus.runlog.fingerprint_index import (
    FingerprintHit,
    find_details,
    find_hit,
    record_details,
    record_hit,
)
from magnus.runlog.models import (
    CREATED,
    PROCESSING,
    BranchLog,
    CodeIdentity,
    DataCatalog,
    RunLog,
    StepAttempt,
    StepLog,
    format_time,
)
from magnus.runlog.storage import RecordStorage
from magnus.services import BaseService


def parent_branch_name(internal_name: str) -> str:
    """The branch a step log belongs to: its name minus the last segment ("" for the run)."""
    return internal_name.rpartition(".")[0]


def parent_step_name(internal_branch_name: str) -> str:
    """The step a branch log belongs to: its name minus the last segment."""
    return internal_branch_name.rpartition(".")[0]


class BaseRunLogStore(BaseService):
    """Base of every run-log store. Subclasses implement the abstract methods."""

    service_type: ClassVar[str] = "run_log_store"
    #: whether several processes may write the same run at once (parallel branches)
    supports_concurrent_writers: ClassVar[bool] = False
    #: whether the log survives the process (``buffered`` does not)
    persistent: ClassVar[bool] = True

    # ------------------------------------------------------------------ factories

    def create_step_log(self, name: str, internal_name: str) -> StepLog:
        """A new, unsaved step log with status CREATED."""
        return StepLog(name=name, internal_name=internal_name, status=CREATED)

    def create_branch_log(self, internal_branch_name: str) -> BranchLog:
        """A new, unsaved branch log with status CREATED."""
        return BranchLog(internal_name=internal_branch_name, status=CREATED)

    def create_attempt_log(self) -> StepAttempt:
        """A new attempt record."""
        return StepAttempt()

    def create_code_identity(self) -> CodeIdentity:
        """A new code identity record."""
        return CodeIdentity()

    def create_data_catalog(self, name: str) -> DataCatalog:
        """A new catalog record."""
        return DataCatalog(name=name)

    # ------------------------------------------------------------------ runs

    @abstractmethod
    def create_run_log(
        self,
        run_id: str,
        dag_hash: str = "",
        use_cached: bool = False,
        tag: str = "",
        original_run_id: str = "",
        status: str = PROCESSING,
    ) -> RunLog:
        """Persist a new run log (start_time = now); ``RunLogExistsError`` if the id is taken."""

    @abstractmethod
    def get_run_log_by_id(self, run_id: str, full: bool = True) -> RunLog:
        """The run log; with ``full=False`` steps may be left out (parameters never are)."""

    @abstractmethod
    def put_run_log(self, run_log: RunLog) -> None:
        """Overwrite the whole run log, steps and parameters included."""

    @abstractmethod
    def update_run_log_status(self, run_id: str, status: str, message: str = "") -> None:
        """Set the run's status (and ``end_time`` when SUCCESS or FAIL).

        ``message``, when given, says why the run ended so (it was interrupted, magnus itself
        failed) and is stored as the run's ``message``; an empty one leaves it as it was.
        """

    @abstractmethod
    def list_runs(self) -> list[RunLog]:
        """Every run in the store, run-level fields only (``steps`` may be empty)."""

    def list_run_summaries(self) -> list[RunLog]:
        """Every run in the store, with what ``runs list`` shows and filters on: the run-level
        fields, but of ``run_config`` perhaps only its ``owner``.

        A store that keeps a small summary of each run reads those; the default is
        :meth:`list_runs`.
        """
        return self.list_runs()

    @abstractmethod
    def location(self, run_id: str) -> str:
        """Where the run's log lives, for people (a path, a URL, ``memory``)."""

    def run_exists(self, run_id: str) -> bool:
        """Whether a run log with this id exists."""
        try:
            self.get_run_log_by_id(run_id, full=False)
        except RunLogNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ parameters and config

    @abstractmethod
    def get_parameters(self, run_id: str) -> dict[str, Any]:
        """The run's current parameters."""

    def read_parameters_shared(self, run_id: str) -> dict[str, Any]:
        """The run's current parameters, their values not copied: what every step reads.

        The values may be the very objects an earlier call gave (when they have not changed
        since), so that a step's cost does not grow with a large parameter it leaves alone (a
        map's iterated list): the caller must never change one in place. The dict is new.
        """
        return self.get_parameters(run_id)

    def _reads_parameters_as(self, implementer: type[Any]) -> bool:
        """Whether ``get_parameters`` is still ``implementer``'s, whose shared read agrees with it.

        A subclass that changes what ``get_parameters`` gives must be read through it.
        """
        return type(self).get_parameters is implementer.get_parameters

    @abstractmethod
    def set_parameters(self, run_id: str, parameters: dict[str, Any]) -> None:
        """Merge ``parameters`` into the run's parameters (parameters are never deleted)."""

    @abstractmethod
    def get_run_config(self, run_id: str) -> dict[str, Any]:
        """The run's ``run_config``."""

    @abstractmethod
    def set_run_config(self, run_id: str, run_config: dict[str, Any]) -> None:
        """Merge ``run_config`` into the stored one (top-level keys)."""

    def copy_parameters(self, from_run_id: str, to_run_id: str) -> dict[str, Any]:
        """Carry an original run's parameters into a re-run; returns what was copied."""
        parameters = self.get_parameters(from_run_id)
        self.set_parameters(to_run_id, parameters)
        return parameters

    # ------------------------------------------------------------------ steps and branches

    @abstractmethod
    def get_step_log(self, internal_name: str, run_id: str, full: bool = True) -> StepLog:
        """A step log by resolved internal name; with ``full`` its branches are included.

        ``full=False`` must cost the same whatever the size of the run: it is what the engine
        reads on every step.
        """

    def get_step_log_with_branches(self, internal_name: str, run_id: str) -> StepLog:
        """A step log with its own branch logs, whose steps may be left out: what a composite
        step's fan-in reads (the status, parameters and element of each branch).

        The default reads the step whole (:meth:`get_step_log`); a store that keeps each record
        apart reads only the step's and its branches' records.
        """
        return self.get_step_log(internal_name, run_id, full=True)

    @abstractmethod
    def add_step_log(self, step_log: StepLog, run_id: str) -> None:
        """Insert or replace a step log under its parent branch (or the run)."""

    @abstractmethod
    def get_branch_log(
        self, internal_branch_name: str, run_id: str, full: bool = True
    ) -> BranchLog | RunLog:
        """A branch log by resolved internal name; ``""`` gives the run log itself.

        With ``full`` its steps (and everything below them) are included; ``full=False`` must
        cost the same whatever the size of the run.
        """

    def update_branch_log_status(self, internal_branch_name: str, run_id: str, status: str) -> None:
        """Set a branch log's status and nothing else (``""``: the run's, as
        :meth:`update_run_log_status`): what a branch's success or fail step does.

        The default reads the branch log and adds it back; a store that keeps each record apart
        changes the one record under the run's lock.
        """
        if not internal_branch_name:
            self.update_run_log_status(run_id, status)
            return
        branch_log = self.get_branch_log(internal_branch_name, run_id, full=False)
        branch_log.status = status
        self.add_branch_log(branch_log, run_id)

    @abstractmethod
    def add_branch_log(self, branch_log: BranchLog | RunLog, run_id: str) -> None:
        """Insert or replace a branch log under its parent step; a RunLog overwrites the run."""

    def add_branch_logs(self, branch_logs: list[BranchLog], run_id: str) -> None:
        """Insert or replace several branch logs: a composite's fan-out, one per branch.

        The default adds them one by one (:meth:`add_branch_log`); a store that keeps each
        record apart writes them at once, under one hold of the run's lock.
        """
        for branch_log in branch_logs:
            self.add_branch_log(branch_log, run_id)

    def add_step_log_and_parameters(
        self, step_log: StepLog, run_id: str, parameters: dict[str, Any]
    ) -> None:
        """Set the run's ``parameters`` (as :meth:`set_parameters`), then insert or replace
        ``step_log``: how a top-level step that produced parameters is recorded as it ends.

        The default makes the two calls; a store that keeps each record apart writes them at
        once, under one hold of the run's lock, so a kill never leaves one without the other.
        """
        if parameters:
            self.set_parameters(run_id, parameters)
        self.add_step_log(step_log, run_id)

    # ------------------------------------------------------------------ fingerprint index

    def index_storage(self) -> RecordStorage | None:
        """Where the fingerprint index is kept (:mod:`magnus.runlog.fingerprint_index`).

        The default, ``None``, keeps no index: a store written before the index existed keeps
        working, :meth:`find_fingerprint` finds nothing in it and every step runs.
        """
        return None

    def record_fingerprint(self, key: str, run_id: str, internal_name: str) -> None:
        """Remember that step ``internal_name`` of run ``run_id`` succeeded with ``key``.

        Written atomically; a key recorded again points to the latest writer. The run is not
        checked (that would cost a read).
        """
        storage = self.index_storage()
        if storage is not None:
            record_hit(storage, key, run_id, internal_name, self.now)

    def find_fingerprint(self, key: str) -> FingerprintHit | None:
        """The step that last recorded ``key`` (run id, internal name, when); ``None`` if none.

        Costs one read whatever the number of runs in the store.
        """
        storage = self.index_storage()
        return None if storage is None else find_hit(storage, key)

    def record_fingerprint_details(self, digest: str, details: dict[str, Any]) -> None:
        """Keep what a fingerprint part ``digest`` was computed from (its modules, ...)."""
        storage = self.index_storage()
        if storage is not None:
            record_details(storage, digest, details)

    def find_fingerprint_details(self, digest: str) -> dict[str, Any] | None:
        """What :meth:`record_fingerprint_details` kept for ``digest``; ``None`` if nothing."""
        storage = self.index_storage()
        return None if storage is None else find_details(storage, digest)

    @staticmethod
    def now() -> str:
        """The current time as the run log writes it."""
        return format_time(datetime.now())
