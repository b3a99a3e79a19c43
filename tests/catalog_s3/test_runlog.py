"""What the chunked-s3 store does beyond the contract: layout, O(1) updates, paging, conflicts."""

from __future__ import annotations

import copy
import json
import pickle
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.s3_server import s3_client
from magnus_catalog_s3.runlog import ChunkedS3RunLogStore

from magnus.exceptions import RunLogNotFoundError, RunLogStoreError
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.chunks import KIND_FOLDERS
from magnus.runlog.folders import folder_storage
from magnus.runlog.models import (
    FAIL,
    PROCESSING,
    SUCCESS,
    UNREADABLE,
    BranchLog,
    RunLog,
    StepLog,
)

RUN = "run-1"


def keys(server: str, bucket: str, prefix: str = "") -> list[str]:
    pages = s3_client(server).get_paginator("list_objects_v2")
    return sorted(
        item["Key"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    )


def fill(store: Any) -> None:
    """The same operations, for any store."""
    store.create_run_log(RUN, tag="t")
    store.add_step_log(StepLog(name="Par", internal_name="Par", status=SUCCESS), RUN)
    store.add_branch_log(BranchLog(internal_name="Par.a b/c", status=SUCCESS), RUN)
    store.add_step_log(StepLog(name="ü", internal_name="Par.a b/c.ü"), RUN)
    store.set_parameters(RUN, {"Size": 2, "x": [1]})


def test_keys_are_the_chunked_fs_record_names(
    make_store: Callable[..., ChunkedS3RunLogStore],
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
) -> None:
    store = make_store(prefix="/logs/")
    fill(store)
    file_system = ChunkedFileSystemRunLogStore(log_folder=str(tmp_path))
    fill(file_system)

    # chunked-fs keeps RunLog.json as a file and the other records in the run's journal.
    records = folder_storage(str(tmp_path))
    on_disk = sorted(
        [f"{RUN}/RunLog.json"]
        + [
            f"{RUN}/{kind}/{name}"
            for kind in KIND_FOLDERS.values()
            for name in records.names(RUN, kind)
        ]
    )
    assert keys(s3_server, s3_bucket) == [f"logs/{name}" for name in on_disk]
    assert "logs/run-1/steps/StepLog-Par.a b%2Fc.%C3%BC^1.json" in keys(s3_server, s3_bucket)
    assert store.location(RUN) == f"s3://{s3_bucket}/logs/run-1/"
    # The same records, in the same shape, as the file system store writes.
    client = s3_client(s3_server)
    for name in on_disk:
        stored = json.loads(client.get_object(Bucket=s3_bucket, Key=f"logs/{name}")["Body"].read())
        local = records.read(RUN, name.removeprefix(f"{RUN}/"))
        if name.endswith("RunLog.json"):
            assert stored.keys() == local.keys()
            assert stored["tag"] == local["tag"] == "t"
        else:
            assert set(stored) == {"created_ns", "record"} == set(local)
            assert stored["record"] == local["record"]
    assert store.get_run_log_by_id(RUN).model_dump(exclude={"start_time"}) == (
        file_system.get_run_log_by_id(RUN).model_dump(exclude={"start_time"})
    )


def test_updates_cost_the_same_whatever_the_size_of_the_run(
    make_store: Callable[..., ChunkedS3RunLogStore], count_requests: Any
) -> None:
    store = make_store()
    steps = {f"s{i}": StepLog(name=f"s{i}", internal_name=f"s{i}") for i in range(300)}
    store.put_run_log(RunLog(run_id=RUN, steps=steps, parameters={"p": 1}))
    counter = count_requests(store.client())

    step = store.get_step_log("s150", RUN, full=False)
    step.status = FAIL
    store.add_step_log(step, RUN)  # replace: read the one object (its stamp), write it
    assert dict(counter.calls) == {"GetObject": 2, "PutObject": 1}

    counter.clear()
    store.add_step_log(StepLog(name="new", internal_name="new"), RUN)  # new: check the run
    assert dict(counter.calls) == {"GetObject": 1, "HeadObject": 1, "PutObject": 1}

    counter.clear()
    store.set_parameters(RUN, {"p": 2})
    store.update_run_log_status(RUN, SUCCESS)
    assert counter.of("ListObjectsV2") == 0
    assert counter.of("PutObject") == 2

    stored = store.get_run_log_by_id(RUN)
    assert list(stored.steps) == [*steps, "new"]
    assert stored.steps["s150"].status == FAIL
    assert stored.parameters == {"p": 2}


def test_runs_of_more_than_a_thousand_records(
    make_store: Callable[..., ChunkedS3RunLogStore],
    s3_server: str,
    s3_bucket: str,
    count_requests: Any,
) -> None:
    store = make_store(max_concurrency=16)
    steps = {
        f"step {i:04d}": StepLog(name=f"step {i:04d}", internal_name=f"step {i:04d}")
        for i in range(1205)
    }
    # Written in an order that is not the sorted order of the keys.
    order = list(reversed(steps))
    run_log = RunLog(run_id=RUN, steps={name: steps[name] for name in order})
    store.put_run_log(run_log)
    assert len(keys(s3_server, s3_bucket, f"run-logs/{RUN}/steps/")) == 1205
    counter = count_requests(store.client())

    stored = store.get_run_log_by_id(RUN)

    assert list(stored.steps) == order
    assert counter.of("ListObjectsV2") >= 3  # steps: 2 pages; parameters, branches: 1 each
    # put_run_log of a smaller run deletes the rest, past the 1000-key limit of one request.
    store.put_run_log(
        RunLog(run_id=RUN, steps={"only": StepLog(name="only", internal_name="only")})
    )
    assert keys(s3_server, s3_bucket, f"run-logs/{RUN}/steps/") == [
        f"run-logs/{RUN}/steps/StepLog-only.json"
    ]


def test_a_lost_conditional_write_is_retried(
    make_store: Callable[..., ChunkedS3RunLogStore], count_requests: Any
) -> None:
    store = make_store()
    rival = make_store()
    store.create_run_log(RUN)
    sneaked: list[int] = []

    def rival_writes_first(params: dict[str, Any], **kwargs: Any) -> None:
        # Just before our conditional write of RunLog.json, another process changes it.
        if params.get("IfMatch") and not sneaked:
            sneaked.append(1)
            rival.set_run_config(RUN, {"rival": True})

    store.client().meta.events.register("before-parameter-build.s3.PutObject", rival_writes_first)
    counter = count_requests(store.client())

    store.set_run_config(RUN, {"mine": True})

    assert sneaked == [1]
    assert counter.of("PutObject") == 2  # the first lost against the rival's
    assert store.get_run_config(RUN) == {"rival": True, "mine": True}


def test_create_run_log_is_conditional(
    make_store: Callable[..., ChunkedS3RunLogStore], count_requests: Any
) -> None:
    store = make_store()
    seen: list[dict[str, Any]] = []
    store.client().meta.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: seen.append(dict(params))
    )
    store.create_run_log(RUN)
    assert seen[0]["IfNoneMatch"] == "*"


def test_errors_name_bucket_and_key(
    make_store: Callable[..., ChunkedS3RunLogStore],
    s3_server: str,
    s3_bucket: str,
    s3_env: None,
) -> None:
    missing = make_store(bucket="no-such-bucket-here")
    with pytest.raises(RunLogStoreError) as caught:
        missing.create_run_log(RUN)
    assert "s3://no-such-bucket-here/run-logs/run-1/RunLog.json" in str(caught.value)
    assert "'no-such-bucket-here' does not exist" in str(caught.value)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = make_store(endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(RunLogStoreError) as caught:
        unreachable.get_run_log_by_id(RUN)
    assert f"s3://{s3_bucket}/run-logs/run-1/RunLog.json" in str(caught.value)
    assert "cannot reach the S3 endpoint" in str(caught.value)

    store = make_store()
    with pytest.raises(RunLogNotFoundError, match=f"s3://{s3_bucket}/run-logs/run-1/"):
        store.get_run_log_by_id(RUN)
    store.create_run_log(RUN)
    s3_client(s3_server).put_object(
        Bucket=s3_bucket, Key="run-logs/run-1/steps/StepLog-broken.json", Body=b"{not json"
    )
    with pytest.raises(RunLogStoreError, match=r"StepLog-broken\.json is not valid JSON"):
        store.get_run_log_by_id(RUN)


def test_list_runs_skips_folders_that_are_not_runs(
    make_store: Callable[..., ChunkedS3RunLogStore], s3_server: str, s3_bucket: str
) -> None:
    store = make_store(prefix="")
    store.create_run_log("first", tag="one")
    store.create_run_log("second")
    store.set_parameters("second", {"a": 1})
    # A catalog's run folder in the same place holds no RunLog.json.
    s3_client(s3_server).put_object(Bucket=s3_bucket, Key="third/data.csv", Body=b"1")

    runs = store.list_runs()

    assert [run.run_id for run in runs] == ["first", "second"]
    assert runs[0].tag == "one"


@pytest.mark.parametrize("prefix", ["", "logs"])
def test_a_corrupt_run_is_listed_unreadable_beside_the_others(
    make_store: Callable[..., ChunkedS3RunLogStore], s3_server: str, s3_bucket: str, prefix: str
) -> None:
    store = make_store(prefix=prefix)
    for run_id in ("before", "a broken/run", "after"):
        store.create_run_log(run_id)
    key = ("logs/" if prefix else "") + "a broken%2Frun/RunLog.json"
    assert key in keys(s3_server, s3_bucket)
    s3_client(s3_server).put_object(Bucket=s3_bucket, Key=key, Body=b"\x00\xff not json")

    listed = {run.run_id: run for run in store.list_runs()}

    assert set(listed) == {"before", "a broken/run", "after"}
    assert listed["a broken/run"].status == UNREADABLE
    assert "RunLog.json is not valid JSON" in listed["a broken/run"].message
    assert listed["before"].status == listed["after"].status == PROCESSING


def test_the_store_pickles_without_its_client(
    make_store: Callable[..., ChunkedS3RunLogStore],
) -> None:
    store = make_store()
    store.create_run_log(RUN)
    client = store.client()

    restored = pickle.loads(pickle.dumps(store))
    duplicate = copy.deepcopy(store)

    assert restored == store == duplicate
    assert restored.client() is not client and duplicate.client() is not client
    assert restored.get_run_log_by_id(RUN).run_id == RUN
    assert b"botocore" not in pickle.dumps(store)
