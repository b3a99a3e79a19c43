"""The contract every run-log store passes, as a pytest suite for plugin authors.

Subclass :class:`RunLogStoreContract` and provide a fixture ``run_log_store`` returning a fresh,
empty store::

    class TestMyStore(RunLogStoreContract):
        @pytest.fixture
        def run_log_store(self, tmp_path):
            return MyStore(location=str(tmp_path))

A store declaring ``supports_concurrent_writers`` is also written by four processes at once; it
must then be picklable and its class importable by a fresh interpreter.

That finding a fingerprint costs the same whatever the number of runs is checked when the
subclass also provides a fixture ``store_reads``: a function giving how many reads (of any kind)
the store has made so far. :func:`count_storage_calls` makes one for a ``ChunkedRunLogStore``.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import pytest

from magnus.exceptions import (
    BranchLogNotFoundError,
    RunLogExistsError,
    RunLogNotFoundError,
    StepLogNotFoundError,
)
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.chunked import ChunkedRunLogStore
from magnus.runlog.models import (
    FAIL,
    PROCESSING,
    SUCCESS,
    BranchLog,
    CodeIdentity,
    DataCatalog,
    RunLog,
    StepAttempt,
    StepLog,
    parse_time,
)
from magnus.runlog.storage import RecordStorage

RUN_ID = "contract-run"
WORKERS = 4
PER_WORKER = 25

# Names a file-based store could confuse: prefixes of each other, case variants, path
# separators, spaces, non-ASCII, dots-only.
ODD_NAMES = ["a", "a b", "a-1", "a/b", "ü", "Foo", "foo", "x", "xy", "..", "a b/c~d*e?f:g"]


#: runs in the store when a lookup's cost is compared with its cost among one run
MANY_RUNS = 12


class _CountingStorage:
    """Stands in for a ``RecordStorage``, counting every call and every name a listing gives."""

    def __init__(self, inner: RecordStorage, counter: list[int]) -> None:
        self._inner = inner
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._counter[0] += 1 + (len(result) if isinstance(result, list) else 0)
            return result

        return counted


def count_storage_calls(
    store: ChunkedRunLogStore, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """A ``store_reads`` fixture's value for a chunked store: its storage calls so far.

    Every call counts (a read, a check that a record exists), and a listing counts one more per
    name it gives, so a lookup that listed or read the runs would cost more in a bigger store.
    """
    counter = [0]
    storage = type(store).storage

    def counting(self: ChunkedRunLogStore) -> RecordStorage:
        return cast(RecordStorage, _CountingStorage(storage(self), counter))

    monkeypatch.setattr(type(store), "storage", counting)
    return lambda: counter[0]


def _step(store: BaseRunLogStore, internal_name: str, status: str = SUCCESS) -> StepLog:
    step = store.create_step_log(internal_name.rpartition(".")[2], internal_name)
    step.status = status
    # Lets a test tell which record it got back.
    step.message = f"message of {internal_name}"
    return step


def _branch(store: BaseRunLogStore, internal_name: str, status: str = SUCCESS) -> BranchLog:
    branch = store.create_branch_log(internal_name)
    branch.status = status
    return branch


def _rich_step(store: BaseRunLogStore, internal_name: str) -> StepLog:
    """A step log with every kind of nested record filled in."""
    step = _step(store, internal_name)
    step.step_type = "task"
    step.mock = True
    identity = store.create_code_identity()
    identity.code_identifier = "0123456789abcdef"
    identity.code_identifier_dependable = True
    identity.code_identifier_url = "git@example.org:team/repo.git"
    docker = CodeIdentity(
        code_identifier="sha256:feed",
        code_identifier_type="docker",
        code_identifier_dependable=True,
        code_identifier_url="local docker host",
    )
    step.code_identities = [identity, docker]
    first = store.create_attempt_log()
    first.attempt_number = 1
    first.status = FAIL
    first.message = "boom"
    first.start_time = "2024-03-01 09:15:02.100000"
    first.end_time = "2024-03-01 09:15:02.180000"
    first.duration = "0:00:00.080000"
    first.parameters = {"size": 2, "nested": {"list": [1, 2.5, "three", None, True]}}
    first.output_parameters = {"score": 0.5}
    second = StepAttempt(attempt_number=2, status=SUCCESS, parameters={"size": 3})
    step.attempts = [first, second]
    step.user_defined_metrics = {"accuracy": 0.93, "loss": [0.5, 0.25]}
    got = store.create_data_catalog("data/in.csv")
    got.stage = "get"
    got.data_hash = "abc"
    got.catalog_relative_path = "contract-run/data/in.csv"
    got.catalog_handler_location = ".catalog"
    put = DataCatalog(name="data/out.csv", stage="put", data_hash="def")
    step.add_data_catalogs([got, put])
    return step


def _build_nested(store: BaseRunLogStore, run_id: str) -> None:
    """par -> par.a -> par.a.x -> par.a.x.1 -> par.a.x.1.y, a sibling branch, a later step."""
    store.add_step_log(_step(store, "par", PROCESSING), run_id)
    store.add_branch_log(_branch(store, "par.a"), run_id)
    store.add_branch_log(_branch(store, "par.b"), run_id)
    store.add_step_log(_step(store, "par.a.x", PROCESSING), run_id)
    store.add_branch_log(_branch(store, "par.a.x.1"), run_id)
    store.add_step_log(_step(store, "par.a.x.1.y"), run_id)
    store.add_step_log(_step(store, "par.b.z"), run_id)
    store.add_step_log(_step(store, "after"), run_id)


def _nested_run_log() -> RunLog:
    """A complete run log built in memory, with everything a store must keep."""
    y = StepLog(name="y", internal_name="par.a.x.1.y", status=SUCCESS, message="deep")
    inner = BranchLog(internal_name="par.a.x.1", status=SUCCESS, steps={y.internal_name: y})
    x = StepLog(
        name="x",
        internal_name="par.a.x",
        status=SUCCESS,
        step_type="parallel",
        branches={inner.internal_name: inner},
    )
    branch_a = BranchLog(internal_name="par.a", status=SUCCESS, steps={x.internal_name: x})
    z = StepLog(name="z", internal_name="par.b.z", status=FAIL, attempts=[StepAttempt()])
    branch_b = BranchLog(internal_name="par.b", status=FAIL, steps={z.internal_name: z})
    par = StepLog(
        name="par",
        internal_name="par",
        status=FAIL,
        step_type="parallel",
        branches={"par.a": branch_a, "par.b": branch_b},
    )
    first = StepLog(
        name="first",
        internal_name="first",
        status=SUCCESS,
        code_identities=[CodeIdentity(code_identifier="c0ffee")],
        data_catalog=[DataCatalog(name="out.txt", stage="put")],
    )
    return RunLog(
        run_id=RUN_ID,
        dag_hash="3f1c",
        tag="nightly",
        status=FAIL,
        start_time="2024-03-01 09:15:02.000000",
        end_time="2024-03-01 09:16:02.000000",
        steps={"first": first, "par": par, "fail": StepLog(name="fail", internal_name="fail")},
        parameters={"size": 2, "chunks": [0, 1], "Foo": {"a": None}},
        run_config={"executor": {"service_name": "local"}, "tag": "nightly"},
    )


def _concurrent_writer(store: BaseRunLogStore, run_id: str, worker: int) -> None:
    """One of the processes of the concurrency test (module level, so 'spawn' can import it)."""
    for i in range(PER_WORKER):
        store.add_step_log(_step(store, f"w{worker} s{i}"), run_id)
        store.set_parameters(run_id, {f"w{worker}_p{i}": [worker, i]})
        # run_config lives in one record for every store: a read-modify-write hot spot.
        store.set_run_config(run_id, {f"w{worker} c{i}": i})


class RunLogStoreContract:
    """The behaviour every run-log store must have; subclass it and provide ``run_log_store``.

    Beyond ``magnus.runlog.base``, the suite pins down: stores hand out copies (changing a returned
    log changes nothing stored), and replacing a step or branch log replaces that record's own
    fields while keeping the branches or steps already stored under it (children are written by
    their own ``add_*`` calls).
    """

    @pytest.fixture
    def store_reads(self) -> Callable[[], int] | None:
        """How many reads the store has made so far; ``None``: the store cannot tell."""
        return None

    # ------------------------------------------------------------------ runs

    def test_create_run_log_stores_the_run_level_fields(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        before = datetime.now()
        created = run_log_store.create_run_log(
            RUN_ID, dag_hash="abc", use_cached=True, tag="t", original_run_id="orig"
        )
        after = datetime.now()
        stored = run_log_store.get_run_log_by_id(RUN_ID)
        for run_log in (created, stored):
            assert run_log.run_id == RUN_ID
            assert run_log.dag_hash == "abc"
            assert run_log.use_cached is True
            assert run_log.tag == "t"
            assert run_log.original_run_id == "orig"
            assert run_log.status == PROCESSING
            assert run_log.end_time == ""
            assert run_log.steps == {}
            assert run_log.parameters == {}
        assert before.replace(microsecond=0) <= parse_time(stored.start_time) <= after
        assert stored.start_time == created.start_time

    def test_create_run_log_keeps_a_given_status(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID, status="CREATED")
        assert run_log_store.get_run_log_by_id(RUN_ID, full=False).status == "CREATED"

    def test_run_exists(self, run_log_store: BaseRunLogStore) -> None:
        assert not run_log_store.run_exists(RUN_ID)
        run_log_store.create_run_log(RUN_ID)
        assert run_log_store.run_exists(RUN_ID)
        assert not run_log_store.run_exists(RUN_ID + "-other")

    def test_duplicate_run_id_is_refused(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID, tag="first")
        with pytest.raises(RunLogExistsError):
            run_log_store.create_run_log(RUN_ID, tag="second")
        assert run_log_store.get_run_log_by_id(RUN_ID).tag == "first"

    def test_missing_run_raises_run_log_not_found(self, run_log_store: BaseRunLogStore) -> None:
        store = run_log_store
        store.create_run_log("someone-else")
        calls = [
            lambda: store.get_run_log_by_id(RUN_ID),
            lambda: store.get_run_log_by_id(RUN_ID, full=False),
            lambda: store.update_run_log_status(RUN_ID, SUCCESS),
            lambda: store.get_parameters(RUN_ID),
            lambda: store.set_parameters(RUN_ID, {"a": 1}),
            lambda: store.get_run_config(RUN_ID),
            lambda: store.set_run_config(RUN_ID, {"a": 1}),
            lambda: store.get_step_log("step", RUN_ID),
            lambda: store.add_step_log(_step(store, "step"), RUN_ID),
            lambda: store.get_branch_log("", RUN_ID),
            lambda: store.get_branch_log("par.a", RUN_ID),
            lambda: store.add_branch_log(_branch(store, "par.a"), RUN_ID),
        ]
        for call in calls:
            with pytest.raises(RunLogNotFoundError):
                call()
        # A failed write must not have created the run.
        assert not store.run_exists(RUN_ID)

    def test_missing_step_raises_step_log_not_found(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        for name in ("nope", "par.a.nope", "par.nope.x", "par.a.x.1.nope", "after.a.b"):
            with pytest.raises(StepLogNotFoundError):
                run_log_store.get_step_log(name, RUN_ID)
        # A branch needs its parent step.
        with pytest.raises(StepLogNotFoundError):
            run_log_store.add_branch_log(_branch(run_log_store, "nope.a"), RUN_ID)
        with pytest.raises(StepLogNotFoundError):
            run_log_store.add_branch_log(_branch(run_log_store, "par.a.nope.1"), RUN_ID)

    def test_missing_branch_raises_branch_log_not_found(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        for name in ("par.c", "after.a", "par.a.x.2", "nope.a"):
            with pytest.raises(BranchLogNotFoundError):
                run_log_store.get_branch_log(name, RUN_ID)
        # A step needs its parent branch.
        with pytest.raises(BranchLogNotFoundError):
            run_log_store.add_step_log(_step(run_log_store, "par.c.x"), RUN_ID)
        with pytest.raises(BranchLogNotFoundError):
            run_log_store.add_step_log(_step(run_log_store, "after.a.x"), RUN_ID)
        with pytest.raises(StepLogNotFoundError):
            run_log_store.get_step_log("par.c.x", RUN_ID)

    def test_status_update_stamps_end_time_when_final(self, run_log_store: BaseRunLogStore) -> None:
        created = run_log_store.create_run_log(RUN_ID, status="CREATED")
        run_log_store.update_run_log_status(RUN_ID, PROCESSING)
        stored = run_log_store.get_run_log_by_id(RUN_ID, full=False)
        assert stored.status == PROCESSING
        assert stored.end_time == ""
        run_log_store.update_run_log_status(RUN_ID, SUCCESS)
        stored = run_log_store.get_run_log_by_id(RUN_ID, full=False)
        assert stored.status == SUCCESS
        assert parse_time(stored.end_time) >= parse_time(created.start_time)
        run_log_store.update_run_log_status(RUN_ID, FAIL)
        failed = run_log_store.get_run_log_by_id(RUN_ID)
        assert failed.status == FAIL
        assert parse_time(failed.end_time) >= parse_time(stored.end_time)
        assert failed.start_time == created.start_time

    def test_status_update_records_why(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.update_run_log_status(RUN_ID, FAIL, "interrupted by SIGINT")
        stored = run_log_store.get_run_log_by_id(RUN_ID, full=False)
        assert (stored.status, stored.message) == (FAIL, "interrupted by SIGINT")
        run_log_store.update_run_log_status(RUN_ID, FAIL)
        assert run_log_store.get_run_log_by_id(RUN_ID).message == "interrupted by SIGINT"

    def test_status_update_keeps_steps_and_parameters(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "one"), RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"a": 1})
        run_log_store.update_run_log_status(RUN_ID, SUCCESS)
        stored = run_log_store.get_run_log_by_id(RUN_ID)
        assert list(stored.steps) == ["one"]
        assert stored.parameters == {"a": 1}

    def test_list_runs(self, run_log_store: BaseRunLogStore) -> None:
        assert run_log_store.list_runs() == []
        run_log_store.create_run_log("run-one", tag="one")
        run_log_store.create_run_log("run-two", tag="two")
        run_log_store.update_run_log_status("run-two", SUCCESS)
        runs = {run.run_id: run for run in run_log_store.list_runs()}
        assert set(runs) == {"run-one", "run-two"}
        assert runs["run-one"].tag == "one"
        assert runs["run-two"].status == SUCCESS

    def test_location_is_a_non_empty_string(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        location = run_log_store.location(RUN_ID)
        assert isinstance(location, str)
        assert location

    # ------------------------------------------------------------------ parameters and config

    def test_parameters_merge(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"a": 1, "b": {"deep": [1, 2]}})
        run_log_store.set_parameters(RUN_ID, {"b": 3, "c": [1, "two", None]})
        expected = {"a": 1, "b": 3, "c": [1, "two", None]}
        assert run_log_store.get_parameters(RUN_ID) == expected
        # Parameters are part of the run, also without its steps (0.5's chunked store lost them).
        assert run_log_store.get_run_log_by_id(RUN_ID, full=False).parameters == expected
        assert run_log_store.get_run_log_by_id(RUN_ID, full=True).parameters == expected

    def test_parameter_keys_never_collide(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        expected = {key: f"value of {key}" for key in ODD_NAMES}
        for key, value in expected.items():
            run_log_store.set_parameters(RUN_ID, {key: value})
        assert run_log_store.get_parameters(RUN_ID) == expected
        run_log_store.set_parameters(RUN_ID, {"x": "changed"})
        parameters = run_log_store.get_parameters(RUN_ID)
        assert parameters["x"] == "changed"
        assert parameters["xy"] == "value of xy"
        assert parameters["Foo"] == "value of Foo"
        assert parameters["foo"] == "value of foo"

    def test_run_config_merge(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.set_run_config(RUN_ID, {"executor": {"service_name": "local"}, "tag": ""})
        run_log_store.set_run_config(RUN_ID, {"tag": "t", "dag": {"start_at": "one"}})
        expected = {
            "executor": {"service_name": "local"},
            "tag": "t",
            "dag": {"start_at": "one"},
        }
        assert run_log_store.get_run_config(RUN_ID) == expected
        assert run_log_store.get_run_log_by_id(RUN_ID, full=False).run_config == expected

    def test_copy_parameters(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log("original")
        run_log_store.create_run_log("rerun")
        run_log_store.set_parameters("original", {"a": 1, "b": [2]})
        run_log_store.set_parameters("rerun", {"b": "fresh", "c": 3})
        copied = run_log_store.copy_parameters("original", "rerun")
        assert copied == {"a": 1, "b": [2]}
        assert run_log_store.get_parameters("rerun") == {"a": 1, "b": [2], "c": 3}
        assert run_log_store.get_parameters("original") == {"a": 1, "b": [2]}

    # ------------------------------------------------------------------ steps and branches

    def test_step_log_round_trip(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        step = _rich_step(run_log_store, "train")
        run_log_store.add_step_log(step, RUN_ID)
        fetched = run_log_store.get_step_log("train", RUN_ID)
        assert fetched.model_dump() == step.model_dump()
        # DataCatalog compares by name only, so compare the fields explicitly too.
        assert [entry.stage for entry in fetched.data_catalog] == ["get", "put"]
        assert fetched.data_catalog[0].data_hash == "abc"
        assert fetched.code_identities[1].code_identifier_type == "docker"
        assert fetched.attempts[0].parameters["nested"]["list"] == [1, 2.5, "three", None, True]
        full = run_log_store.get_run_log_by_id(RUN_ID)
        assert full.steps["train"].model_dump() == step.model_dump()

    def test_extra_fields_round_trip(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        step = StepLog.model_validate(
            {"name": "s", "internal_name": "s", "status": SUCCESS, "retry_reason": "flaky"}
        )
        run_log_store.add_step_log(step, RUN_ID)
        assert run_log_store.get_step_log("s", RUN_ID).model_dump()["retry_reason"] == "flaky"

    def test_insertion_order_of_steps_is_kept(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        names = ["zeta", "alpha", "mid", "beta", "Alpha", "omega"]
        for name in names:
            run_log_store.add_step_log(_step(run_log_store, name), RUN_ID)
        assert list(run_log_store.get_run_log_by_id(RUN_ID).steps) == names
        # Replacing an early step does not move it.
        run_log_store.add_step_log(_step(run_log_store, "zeta", FAIL), RUN_ID)
        stored = run_log_store.get_run_log_by_id(RUN_ID)
        assert list(stored.steps) == names
        assert stored.steps["zeta"].status == FAIL

    def test_insertion_order_inside_branches_is_kept(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "map"), RUN_ID)
        branch_names = ["map.10", "map.2", "map.1"]
        for branch_name in branch_names:
            run_log_store.add_branch_log(_branch(run_log_store, branch_name), RUN_ID)
        step_names = ["map.2.z", "map.2.a", "map.2.m"]
        for step_name in step_names:
            run_log_store.add_step_log(_step(run_log_store, step_name), RUN_ID)
        run_log_store.add_branch_log(_branch(run_log_store, "map.10", FAIL), RUN_ID)
        map_step = run_log_store.get_step_log("map", RUN_ID)
        assert list(map_step.branches) == branch_names
        assert map_step.branches["map.10"].status == FAIL
        assert list(map_step.branches["map.2"].steps) == step_names
        full = run_log_store.get_run_log_by_id(RUN_ID)
        assert list(full.steps["map"].branches) == branch_names
        assert list(full.steps["map"].branches["map.2"].steps) == step_names

    def test_branch_logs_added_at_once_are_as_if_added_one_by_one(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "map"), RUN_ID)
        run_log_store.add_branch_log(_branch(run_log_store, "map.1"), RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "map.1.a"), RUN_ID)
        names = ["map.3", "map.1", "map.2"]
        statuses = [PROCESSING, FAIL, SUCCESS]
        branches = [_branch(run_log_store, n, s) for n, s in zip(names, statuses, strict=True)]
        branches[0].parameters = {"x": 1}
        run_log_store.add_branch_logs(branches, RUN_ID)
        map_step = run_log_store.get_step_log("map", RUN_ID)
        # A branch added before keeps its place and its steps; the others follow in order.
        assert list(map_step.branches) == ["map.1", "map.3", "map.2"]
        assert [map_step.branches[n].status for n in names] == statuses
        assert map_step.branches["map.3"].parameters == {"x": 1}
        assert list(map_step.branches["map.1"].steps) == ["map.1.a"]
        run_log_store.add_branch_logs([], RUN_ID)
        # Their step must be there, as for one branch.
        with pytest.raises(StepLogNotFoundError):
            run_log_store.add_branch_logs([_branch(run_log_store, "nope.1")], RUN_ID)

    def test_a_step_log_added_with_parameters_is_as_if_they_were_set_first(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"x": 1, "y": "kept"})
        run_log_store.add_step_log(_step(run_log_store, "first"), RUN_ID)
        step = _step(run_log_store, "second", SUCCESS)
        run_log_store.add_step_log_and_parameters(step, RUN_ID, {"x": 2, "z": [3]})
        assert run_log_store.get_parameters(RUN_ID) == {"x": 2, "y": "kept", "z": [3]}
        whole = run_log_store.get_run_log_by_id(RUN_ID, full=True)
        assert list(whole.steps) == ["first", "second"]
        assert whole.steps["second"].status == SUCCESS
        # Replacing it keeps its place; without parameters it is add_step_log.
        run_log_store.add_step_log_and_parameters(_step(run_log_store, "first", FAIL), RUN_ID, {})
        whole = run_log_store.get_run_log_by_id(RUN_ID, full=True)
        assert list(whole.steps) == ["first", "second"]
        assert whole.steps["first"].status == FAIL
        with pytest.raises(RunLogNotFoundError):
            run_log_store.add_step_log_and_parameters(_step(run_log_store, "a"), "nope", {"x": 1})

    def test_nested_branches_are_assembled(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        full = run_log_store.get_run_log_by_id(RUN_ID, full=True)
        assert list(full.steps) == ["par", "after"]
        par = full.steps["par"]
        assert list(par.branches) == ["par.a", "par.b"]
        assert list(par.branches["par.a"].steps) == ["par.a.x"]
        assert list(par.branches["par.b"].steps) == ["par.b.z"]
        x = par.branches["par.a"].steps["par.a.x"]
        assert list(x.branches) == ["par.a.x.1"]
        y = x.branches["par.a.x.1"].steps["par.a.x.1.y"]
        assert y.name == "y"
        assert y.message == "message of par.a.x.1.y"
        assert full.search_step_by_internal_name("par.a.x.1.y").model_dump() == y.model_dump()

    def test_nested_logs_are_reachable_directly(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        full = run_log_store.get_run_log_by_id(RUN_ID)
        par = full.steps["par"]
        # A composite's step log comes with its branches and everything below them.
        assert run_log_store.get_step_log("par", RUN_ID).model_dump() == par.model_dump()
        x = par.branches["par.a"].steps["par.a.x"]
        assert run_log_store.get_step_log("par.a.x", RUN_ID).model_dump() == x.model_dump()
        y = run_log_store.get_step_log("par.a.x.1.y", RUN_ID)
        assert (y.internal_name, y.message) == ("par.a.x.1.y", "message of par.a.x.1.y")
        assert y.branches == {}
        branch_a = run_log_store.get_branch_log("par.a", RUN_ID)
        assert isinstance(branch_a, BranchLog)
        assert branch_a.model_dump() == par.branches["par.a"].model_dump()
        inner = run_log_store.get_branch_log("par.a.x.1", RUN_ID)
        assert isinstance(inner, BranchLog)
        assert list(inner.steps) == ["par.a.x.1.y"]
        after = run_log_store.get_step_log("after", RUN_ID)
        assert after.branches == {}

    def test_shallow_reads_leave_out_what_is_below(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        par = run_log_store.get_step_log("par", RUN_ID, full=False)
        assert (par.internal_name, par.status, par.branches) == ("par", PROCESSING, {})
        branch = run_log_store.get_branch_log("par.a", RUN_ID, full=False)
        assert isinstance(branch, BranchLog)
        assert (branch.internal_name, branch.status, branch.steps) == ("par.a", SUCCESS, {})
        head = run_log_store.get_branch_log("", RUN_ID, full=False)
        assert isinstance(head, RunLog) and head.steps == {}
        # a shallow read is not a truncating write: everything is still there
        assert "par.a.x.1" in run_log_store.get_step_log("par.a.x", RUN_ID).branches

    def test_branch_parameters_and_message_round_trip(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "m", PROCESSING), RUN_ID)
        branch = _branch(run_log_store, "m.0", FAIL)
        branch.parameters = {"score": 0.5, "Nested": {"a": [1, 2]}}
        branch.message = "the branch process died"
        run_log_store.add_branch_log(branch, RUN_ID)
        again = run_log_store.get_branch_log("m.0", RUN_ID, full=False)
        assert isinstance(again, BranchLog)
        assert again.parameters == {"score": 0.5, "Nested": {"a": [1, 2]}}
        assert again.message == "the branch process died"
        assert run_log_store.get_parameters(RUN_ID) == {}

    def test_replacing_a_step_log(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "one", PROCESSING), RUN_ID)
        replacement = _rich_step(run_log_store, "one")
        replacement.status = FAIL
        run_log_store.add_step_log(replacement, RUN_ID)
        fetched = run_log_store.get_step_log("one", RUN_ID)
        assert fetched.model_dump() == replacement.model_dump()
        assert list(run_log_store.get_run_log_by_id(RUN_ID).steps) == ["one"]

    def test_replacing_a_step_keeps_its_stored_branches(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        before = run_log_store.get_step_log("par", RUN_ID)
        # The fan-in pattern: fetch the composite, change its status, store it again.
        composite = run_log_store.get_step_log("par", RUN_ID)
        composite.status = SUCCESS
        run_log_store.add_step_log(composite, RUN_ID)
        # A step log given without branches does not delete the stored ones either.
        bare = _step(run_log_store, "par", FAIL)
        run_log_store.add_step_log(bare, RUN_ID)
        after = run_log_store.get_step_log("par", RUN_ID)
        assert after.status == FAIL
        assert after.model_dump()["branches"] == before.model_dump()["branches"]

    def test_replacing_a_branch_keeps_its_stored_steps(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        run_log_store.add_branch_log(_branch(run_log_store, "par.a", FAIL), RUN_ID)
        branch = run_log_store.get_branch_log("par.a", RUN_ID)
        assert isinstance(branch, BranchLog)
        assert branch.status == FAIL
        assert list(branch.steps) == ["par.a.x"]
        assert list(run_log_store.get_step_log("par", RUN_ID).branches) == ["par.a", "par.b"]

    def test_empty_branch_name_gives_the_run_log(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID, tag="t")
        _build_nested(run_log_store, RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"a": 1})
        run_log = run_log_store.get_branch_log("", RUN_ID)
        assert isinstance(run_log, RunLog)
        assert run_log.model_dump() == run_log_store.get_run_log_by_id(RUN_ID).model_dump()
        assert list(run_log.steps) == ["par", "after"]
        assert run_log.parameters == {"a": 1}

    def test_add_branch_log_with_a_run_log_overwrites_the_run(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"old": 1})
        run_log = run_log_store.get_run_log_by_id(RUN_ID)
        run_log.status = SUCCESS
        run_log.tag = "changed"
        del run_log.steps["after"]
        run_log.parameters = {"new": 2}
        run_log_store.add_branch_log(run_log, RUN_ID)
        stored = run_log_store.get_run_log_by_id(RUN_ID)
        assert stored.model_dump() == run_log.model_dump()
        assert list(stored.steps) == ["par"]
        assert stored.parameters == {"new": 2}

    def test_put_run_log_round_trip(self, run_log_store: BaseRunLogStore) -> None:
        run_log = _nested_run_log()
        run_log_store.put_run_log(run_log)
        assert run_log_store.get_run_log_by_id(RUN_ID, full=True).model_dump() == (
            run_log.model_dump()
        )
        summary = run_log_store.get_run_log_by_id(RUN_ID, full=False)
        assert summary.parameters == run_log.parameters
        assert summary.run_config == run_log.run_config
        assert (summary.status, summary.end_time) == (FAIL, run_log.end_time)
        deep = run_log_store.get_step_log("par.a.x.1.y", RUN_ID)
        assert deep.message == "deep"

    def test_put_run_log_replaces_everything(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.put_run_log(_nested_run_log())
        smaller = RunLog(
            run_id=RUN_ID,
            status=SUCCESS,
            steps={"only": StepLog(name="only", internal_name="only")},
            parameters={"size": 5},
        )
        run_log_store.put_run_log(smaller)
        assert run_log_store.get_run_log_by_id(RUN_ID).model_dump() == smaller.model_dump()
        with pytest.raises(StepLogNotFoundError):
            run_log_store.get_step_log("par", RUN_ID)

    def test_operations_give_exactly_what_was_put(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID, dag_hash="h", tag="t")
        _build_nested(run_log_store, RUN_ID)
        run_log_store.add_step_log(_rich_step(run_log_store, "par.b.rich"), RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"p": [1, 2]})
        run_log_store.set_run_config(RUN_ID, {"k": "v"})
        run_log_store.update_run_log_status(RUN_ID, SUCCESS)
        created = run_log_store.get_run_log_by_id(RUN_ID, full=False)
        expected = RunLog(
            run_id=RUN_ID,
            dag_hash="h",
            tag="t",
            status=SUCCESS,
            start_time=created.start_time,
            end_time=created.end_time,
            parameters={"p": [1, 2]},
            run_config={"k": "v"},
        )
        # Rebuild the expected tree by hand, in the order of the operations above.
        expected.steps["par"] = _step(run_log_store, "par", PROCESSING)
        par = expected.steps["par"]
        par.branches = {"par.a": _branch(run_log_store, "par.a")}
        par.branches["par.b"] = _branch(run_log_store, "par.b")
        x = _step(run_log_store, "par.a.x", PROCESSING)
        par.branches["par.a"].steps["par.a.x"] = x
        x.branches["par.a.x.1"] = _branch(run_log_store, "par.a.x.1")
        x.branches["par.a.x.1"].steps["par.a.x.1.y"] = _step(run_log_store, "par.a.x.1.y")
        par.branches["par.b"].steps["par.b.z"] = _step(run_log_store, "par.b.z")
        par.branches["par.b"].steps["par.b.rich"] = _rich_step(run_log_store, "par.b.rich")
        expected.steps["after"] = _step(run_log_store, "after")
        assert run_log_store.get_run_log_by_id(RUN_ID).model_dump() == expected.model_dump()

    def test_odd_step_names(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        for name in ODD_NAMES:
            if name != "..":  # a dot cannot be part of a step name
                run_log_store.add_step_log(_step(run_log_store, name), RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "p"), RUN_ID)
        run_log_store.add_branch_log(_branch(run_log_store, "p.a b"), RUN_ID)
        run_log_store.add_branch_log(_branch(run_log_store, "p.a/b"), RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "p.a b.ü"), RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "p.a/b.Foo"), RUN_ID)
        run_log_store.add_step_log(_step(run_log_store, "p.a/b.foo"), RUN_ID)
        step_names = [name for name in ODD_NAMES if name != ".."]
        for name in [*step_names, "p.a b.ü", "p.a/b.Foo", "p.a/b.foo"]:
            fetched = run_log_store.get_step_log(name, RUN_ID)
            assert (fetched.internal_name, fetched.message) == (name, f"message of {name}")
        full = run_log_store.get_run_log_by_id(RUN_ID)
        assert list(full.steps) == [*step_names, "p"]
        assert list(full.steps["p"].branches) == ["p.a b", "p.a/b"]
        assert list(full.steps["p"].branches["p.a/b"].steps) == ["p.a/b.Foo", "p.a/b.foo"]
        assert list(full.steps["p"].branches["p.a b"].steps) == ["p.a b.ü"]

    def test_returned_logs_are_copies(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        _build_nested(run_log_store, RUN_ID)
        run_log_store.set_parameters(RUN_ID, {"a": [1]})
        step = _step(run_log_store, "late", PROCESSING)
        run_log_store.add_step_log(step, RUN_ID)
        step.status = FAIL  # changing the caller's object after adding it
        run_log_store.get_step_log("par", RUN_ID).branches.clear()
        run_log_store.get_run_log_by_id(RUN_ID).steps.clear()
        run_log_store.get_parameters(RUN_ID)["a"].append(2)
        run_log_store.get_run_config(RUN_ID)["sneaky"] = True
        stored = run_log_store.get_run_log_by_id(RUN_ID)
        assert stored.steps["late"].status == PROCESSING
        assert list(stored.steps["par"].branches) == ["par.a", "par.b"]
        assert stored.parameters == {"a": [1]}
        assert "sneaky" not in stored.run_config

    # ------------------------------------------------------------------ concurrency

    def test_concurrent_writers_lose_nothing(self, run_log_store: BaseRunLogStore) -> None:
        if not type(run_log_store).supports_concurrent_writers:
            pytest.skip("the store does not declare supports_concurrent_writers")
        run_log_store.create_run_log(RUN_ID)
        # Fail here, with a clear message, rather than inside the children.
        pickle.loads(pickle.dumps(run_log_store))
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=_concurrent_writer, args=(run_log_store, RUN_ID, worker))
            for worker in range(WORKERS)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=300)
        for process in processes:
            if process.is_alive():
                process.kill()
        assert [process.exitcode for process in processes] == [0] * WORKERS
        run_log = run_log_store.get_run_log_by_id(RUN_ID)
        expected_steps = {f"w{w} s{i}" for w in range(WORKERS) for i in range(PER_WORKER)}
        assert set(run_log.steps) == expected_steps
        assert all(step.status == SUCCESS for step in run_log.steps.values())
        expected_parameters = {
            f"w{w}_p{i}": [w, i] for w in range(WORKERS) for i in range(PER_WORKER)
        }
        assert run_log.parameters == expected_parameters
        assert run_log.run_config == {
            f"w{w} c{i}": i for w in range(WORKERS) for i in range(PER_WORKER)
        }
        # Each worker's own steps keep the order it wrote them in.
        for worker in range(WORKERS):
            mine = [name for name in run_log.steps if name.startswith(f"w{worker} ")]
            assert mine == [f"w{worker} s{i}" for i in range(PER_WORKER)]

    # ------------------------------------------------------------------ fingerprint index

    def test_a_recorded_fingerprint_is_found(self, run_log_store: BaseRunLogStore) -> None:
        run_log_store.create_run_log(RUN_ID)
        keys = ["0f" * 32, "sha256:Ab/c d"]
        for number, key in enumerate(keys):
            run_log_store.record_fingerprint(key, RUN_ID, f"fan.{number}.train")
        for number, key in enumerate(keys):
            hit = run_log_store.find_fingerprint(key)
            assert hit is not None
            assert (hit.key, hit.run_id, hit.internal_name) == (key, RUN_ID, f"fan.{number}.train")
            assert parse_time(hit.recorded_at) <= datetime.now()
        # Recording is not a run: the store's runs are as they were.
        assert [run.run_id for run in run_log_store.list_runs()] == [RUN_ID]

    def test_an_unknown_fingerprint_is_not_found(self, run_log_store: BaseRunLogStore) -> None:
        assert run_log_store.find_fingerprint("0f" * 32) is None
        run_log_store.record_fingerprint("0f" * 32, RUN_ID, "train")
        assert run_log_store.find_fingerprint("0e" * 32) is None
        # Keys differing only in case are different keys.
        run_log_store.record_fingerprint("Key", RUN_ID, "train")
        assert run_log_store.find_fingerprint("key") is None

    def test_the_latest_run_recording_a_fingerprint_wins(
        self, run_log_store: BaseRunLogStore
    ) -> None:
        run_log_store.record_fingerprint("k", "first-run", "train")
        run_log_store.record_fingerprint("k", "second-run", "fit")
        hit = run_log_store.find_fingerprint("k")
        assert hit is not None
        assert (hit.run_id, hit.internal_name) == ("second-run", "fit")

    def test_fingerprint_details_are_kept_by_digest(self, run_log_store: BaseRunLogStore) -> None:
        details = {"modules": {"src.features": {"path": "src/features.py", "digest": "ab" * 8}}}
        run_log_store.record_fingerprint_details("0f" * 32, details)
        assert run_log_store.find_fingerprint_details("0f" * 32) == details
        assert run_log_store.find_fingerprint_details("0e" * 32) is None
        # Details are not hits: the index does not mistake one for the other.
        assert run_log_store.find_fingerprint("0f" * 32) is None
        run_log_store.record_fingerprint("0f" * 32, RUN_ID, "train")
        assert run_log_store.find_fingerprint_details("0f" * 32) == details

    def test_finding_a_fingerprint_costs_the_same_whatever_the_number_of_runs(
        self, run_log_store: BaseRunLogStore, store_reads: Callable[[], int] | None
    ) -> None:
        if store_reads is None:
            pytest.skip("the suite provides no store_reads fixture for this store")
        counter = store_reads

        def add_run(number: int) -> None:
            run_id = f"run-{number}"
            run_log_store.create_run_log(run_id)
            run_log_store.add_step_log(_step(run_log_store, "train"), run_id)
            run_log_store.record_fingerprint(f"key-{number}", run_id, "train")

        def cost(key: str) -> tuple[int, str | None]:
            before = counter()
            hit = run_log_store.find_fingerprint(key)
            return counter() - before, None if hit is None else hit.run_id

        add_run(0)
        among_one = [cost("key-0"), cost("missing")]
        for number in range(1, MANY_RUNS):
            add_run(number)
        among_many = [cost("key-0"), cost("missing")]
        assert among_one[0] == (among_one[0][0], "run-0") and among_one[0][0] >= 1
        assert among_many == among_one
