"""The run log schema.

The JSON field names are a contract with magnus 0.5 users (the reproducibility page): extra fields
may be added, none renamed. ``schema_version`` lets readers tell our records from 0.5's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"

CREATED = "CREATED"
PROCESSING = "PROCESSING"
SUCCESS = "SUCCESS"
FAIL = "FAIL"
TRIGGERED = "TRIGGERED"
#: what ``list_runs`` reports for a run whose records cannot be read (never stored)
UNREADABLE = "UNREADABLE"

TERMINAL_STATUSES = frozenset({SUCCESS, FAIL})

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def format_time(moment: datetime) -> str:
    """A wall-clock time as the run log writes it, always with microseconds.

    What ``strftime(TIME_FORMAT)`` writes, for a time without a zone, three times faster: every
    step writes several.
    """
    if moment.tzinfo is not None:
        return moment.strftime(TIME_FORMAT)
    return moment.isoformat(" ", "microseconds")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`.

    ``fromisoformat`` reads what ``format_time`` writes some 40 times faster than ``strptime``
    (``runs list`` and ``runs show`` parse two times per run or step); anything it reads
    otherwise (a zone, no seconds) goes through ``strptime``, which says what is wrong.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None or len(text) != _TIME_LENGTH:
        return datetime.strptime(text, TIME_FORMAT)
    return moment


#: the length of every time ``format_time`` writes
_TIME_LENGTH = len("2026-01-01 00:00:00.000000")


def format_duration(delta: timedelta) -> str:
    """A duration as ``H:MM:SS.ffffff``, always with microseconds."""
    total = delta.total_seconds()
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{seconds:09.6f}"


class _Record(BaseModel):
    # NaN and infinities are written as the NaN/Infinity tokens Python's json module reads and
    # writes (pydantic's default is null): the record says what the next step was given.
    model_config = ConfigDict(extra="allow", populate_by_name=True, ser_json_inf_nan="constants")


def _when_set(description: str) -> Any:
    """A field written only when it has a value: absent records read as ``None``."""
    return Field(default=None, exclude_if=lambda value: value is None, description=description)


class CodeIdentity(_Record):
    """Which code ran: a git commit (or another kind of identifier, e.g. an image digest)."""

    code_identifier: str | None = None
    code_identifier_type: str = "git"
    code_identifier_dependable: bool = False
    code_identifier_url: str | None = None
    code_identifier_message: str | None = None
    code_identifier_diff: str | None = _when_set(
        "where the catalog keeps the diff of a dirty working tree"
    )


class DataCatalog(_Record):
    """One file moved through the catalog by a step."""

    name: str
    data_hash: str = ""
    catalog_relative_path: str = ""
    catalog_handler_location: str = ""
    stage: str = ""

    def __eq__(self, other: object) -> bool:
        # 0.5 compares catalog entries by name only; de-duplication relies on it.
        return isinstance(other, DataCatalog) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Fingerprint(_Record):
    """What decides an attempt's result, as SHA-256 hex digests.

    ``key`` digests the five parts together; two attempts with the same key ran the same code
    and definition on the same parameters, inputs and environment. The parts are kept so that
    a difference can be explained.
    """

    key: str
    code: str
    definition: str
    parameters: str
    inputs: str
    environment: str


class StepAttempt(_Record):
    """One execution of a leaf step.

    ``parameters`` holds what the attempt consumed; ``output_parameters`` what it produced.
    """

    attempt_number: int = 1
    start_time: str = ""
    end_time: str = ""
    duration: str = ""
    status: str = FAIL
    message: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_parameters: dict[str, Any] = Field(default_factory=dict)
    fingerprint: Fingerprint | None = _when_set(
        "a task or stub attempt: the digests of what decides its result"
    )


class BranchLog(_Record):
    """The log of one branch of a composite step (a parallel branch, a map element, a dag).

    ``parameters`` holds what the branch's steps produced (its parameter scope); ``message``
    says why a branch failed when no step of it could say (its process died, ...).
    """

    internal_name: str
    status: str = CREATED
    steps: dict[str, StepLog] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    map_variable: dict[str, Any] | None = _when_set("a map element's branch: its element")


class StepLog(_Record):
    """Everything recorded about one step of one run."""

    name: str
    internal_name: str
    status: str = CREATED
    step_type: str = "task"
    message: str = ""
    mock: bool = False
    code_identities: list[CodeIdentity] = Field(default_factory=list)
    attempts: list[StepAttempt] = Field(default_factory=list)
    user_defined_metrics: dict[str, Any] = Field(default_factory=dict)
    branches: dict[str, BranchLog] = Field(default_factory=dict)
    data_catalog: list[DataCatalog] = Field(default_factory=list)
    map_values: list[Any] | None = _when_set("a map step: the elements it fanned out over")
    chosen_branch: str | None = _when_set("a conditional step: the branch it ran")
    condition_value: Any = _when_set("a conditional step: the parameter value that chose it")
    iterations: int | None = _when_set("a loop step: how many iterations it started")
    output_parameters: dict[str, Any] | None = _when_set(
        "a composite or reused step: what it passed on to the enclosing scope"
    )
    reused_from: str | None = _when_set("a reused step: the run it was reused from")
    reused_from_step: str | None = _when_set(
        "a step reused by fingerprint: its internal name in the run it was reused from"
    )
    not_reused: str | None = _when_set(
        "a step that ran although reuse was on: why an earlier result could not be used"
    )
    changed_since_original: list[str] | None = _when_set(
        "a reused step: what changed since the original run (definition, code)"
    )
    tracker_error: str | None = _when_set("why the experiment tracker missed the metrics")

    def add_data_catalogs(self, entries: list[DataCatalog]) -> None:
        """Append catalog records, keeping their order (get, then API calls, then put)."""
        self.data_catalog.extend(entries)


class RunLog(_Record):
    """The whole record of a run, as ``magnus runs show --json`` prints it."""

    run_id: str
    dag_hash: str | None = ""
    use_cached: bool = False
    tag: str = ""
    original_run_id: str = ""
    status: str = CREATED
    steps: dict[str, StepLog] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    run_config: dict[str, Any] = Field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION
    start_time: str = ""
    end_time: str = ""
    #: why the run ended as it did when no step can say (interrupted, magnus itself failed)
    message: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        """The seed's JSON structure (plus our extra fields), ready for ``json.dumps``."""
        return self.model_dump(mode="json", by_alias=True)

    def search_step_by_internal_name(self, internal_name: str) -> StepLog:
        """Find a step log anywhere in the tree by its resolved internal name.

        Raises ``KeyError`` naming the step when absent.
        """
        parts = internal_name.split(".")
        steps = self.steps
        # Step names sit at even positions, branch names at odd ones: step.branch.step...
        for depth in range(0, len(parts), 2):
            step_name = ".".join(parts[: depth + 1])
            step = steps.get(step_name)
            if step is None:
                raise KeyError(internal_name)
            if depth + 1 == len(parts):
                return step
            branch = step.branches.get(".".join(parts[: depth + 2]))
            if branch is None:
                raise KeyError(internal_name)
            steps = branch.steps
        raise KeyError(internal_name)


BranchLog.model_rebuild()
StepLog.model_rebuild()


#: Per record model, the names of all its fields: the one set every record read back shares.
_ALL_FIELDS: dict[type[BaseModel], set[str]] = {}


def share_field_sets(record: _Record) -> None:
    """Let ``record`` and every record inside it share one ``model_fields_set`` per model.

    pydantic keeps in each instance the set of the fields its data held: some 700 bytes, as
    much as the rest of a small record, 65 MB for the run log of a map over 10,000 elements. A
    record read back from a store held what its writer dumped, so each is given the set of all
    its model's fields instead, shared. Assigning a field adds nothing to a set that already
    names it: the shared set does not change. Only ``model_dump(exclude_unset=True)`` could
    tell, and dumps every field of such a record.
    """
    pending: list[Any] = [record]
    while pending:
        item = pending.pop()
        model = type(item)
        shared = _ALL_FIELDS.get(model)
        if shared is None:
            shared = _ALL_FIELDS[model] = set(model.model_fields)
            _NESTED[model] = _record_fields(model)
        if item.__pydantic_fields_set__ <= shared:
            object.__setattr__(item, "__pydantic_fields_set__", shared)
        values = item.__dict__
        for name in _NESTED[model]:
            value = values.get(name)
            if isinstance(value, _Record):
                pending.append(value)
            elif isinstance(value, list):
                pending.extend(value)  # attempts, code identities, catalog entries
            elif isinstance(value, dict):
                pending.extend(value.values())  # steps, branches


# Per record model, the fields that can hold records: only those are walked.
_NESTED: dict[type[BaseModel], tuple[str, ...]] = {}


def _record_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose type names a record model (alone, in a list or a dict)."""

    def names_record(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, _Record):
            return True
        return any(names_record(argument) for argument in get_args(annotation))

    return tuple(
        name for name, field in model.model_fields.items() if names_record(field.annotation)
    )
