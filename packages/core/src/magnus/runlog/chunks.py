"""The chunked layout of a run log: record names, the chunk codec, and assembling the tree.

A run's records, relative to the run (a folder on disk, a key prefix in a bucket):

* ``RunLog.json`` -- the run-level fields and ``run_config``; ``steps`` and ``parameters`` empty;
* ``RunLog.snapshot.json`` -- where the storage keeps snapshots, the whole run as it was when it
  was first read whole after it ended (on one line); any change removes it first (under the
  run's lock);
* ``RunLog.summary.json`` -- where the storage keeps summaries, what ``runs list`` shows of the
  run: ``RunLog.json`` without ``run_config`` (but its ``owner``), stamped with the version of
  the ``RunLog.json`` it was made from (:func:`run_summary`); written after ``RunLog.json``
  under the run's lock, and believed only while that version is still the one on disk;
* ``parameters/Parameter-<key>.json`` -- one parameter, record ``{"<key>": value}``;
* ``steps/StepLog-<internal name>.json`` -- one step log without its ``branches``;
* ``branches/BranchLog-<internal branch name>.json`` -- one branch log without its ``steps``.

One folder per kind of record: reading the parameters (which every step does) lists only the
parameters, whatever the number of steps and branches. On a file system the records inside these
folders are lines of the run's journal rather than files (:mod:`magnus.runlog.record_journal`);
their names are the same.

Names in file names are encoded by :func:`magnus.runlog.files.encode_name` and matched exactly;
where file names are bounded, a name too long keeps a readable prefix and a digest
(:func:`chunk_path_name`). Every chunk is ``{"created_ns": <int>, "record": {...}}``: the
creation time orders records on assembly and is kept when a chunk is rewritten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from magnus.exceptions import RunLogStoreError
from magnus.internal_names import MAX_FILE_NAME_BYTES, fit_file_name
from magnus.runlog.base import parent_branch_name, parent_step_name
from magnus.runlog.files import decode_name, encode_name
from magnus.runlog.models import BranchLog, RunLog, StepLog

logger = logging.getLogger(__name__)

RUN_FILE = "RunLog.json"
#: The whole run in one file, written when an ended run is first read whole and removed by any
#: change after: ``runs show`` of a long run reads one file, not one per step.
SNAPSHOT_FILE = "RunLog.snapshot.json"
#: What ``runs list`` shows of a run, in a small file: listing 10,000 runs need not read their
#: ``run_config`` (the pipeline's definition, among others).
SUMMARY_FILE = "RunLog.summary.json"
#: The keys of ``run_config`` a summary keeps: the owner tells an abandoned run.
SUMMARY_CONFIG_KEYS = ("owner",)
PARAMETER = "Parameter"
STEP = "StepLog"
BRANCH = "BranchLog"
KIND_FOLDERS = {PARAMETER: "parameters", STEP: "steps", BRANCH: "branches"}
_SUFFIX = ".json"

_stamp_guard = threading.Lock()
_last_stamp = 0


def next_stamp() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process.

    Two chunks created by one process in the same clock tick must still sort in creation order.
    """
    global _last_stamp
    with _stamp_guard:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def chunk_file_name(kind: str, name: str, limit: int | None = None) -> str:
    """The file name of the chunk of ``kind`` (``StepLog``...) for ``name``.

    With ``limit`` (bytes), a name too long for it is shortened by
    :func:`magnus.internal_names.fit_file_name`; shortened names hold ``=``, which encoded names
    never do, and the record inside names its step or branch in full.
    """
    encoded = encode_name(name)
    if limit is not None:
        encoded = fit_file_name(encoded, limit - len(kind) - 1 - len(_SUFFIX))
    return f"{kind}-{encoded}{_SUFFIX}"


def chunk_path_name(kind: str, name: str) -> str:
    """The file name of a chunk on a file system: bounded to ``MAX_FILE_NAME_BYTES``."""
    return chunk_file_name(kind, name, MAX_FILE_NAME_BYTES)


def chunk_record(kind: str, name: str, limit: int | None = None) -> str:
    """The name of a chunk relative to its run: ``<kind folder>/<file name>``."""
    return f"{KIND_FOLDERS[kind]}/{chunk_file_name(kind, name, limit)}"


def chunk_kind_and_name(file_name: str) -> tuple[str, str] | None:
    """The kind and decoded name of a chunk file; ``None`` for any other file."""
    kind, dash, rest = file_name.partition("-")
    if not dash or kind not in KIND_FOLDERS or not rest.endswith(_SUFFIX):
        return None
    return kind, decode_name(rest[: -len(_SUFFIX)])


def encode_chunk(record: dict[str, Any], created_ns: int) -> dict[str, Any]:
    """The stored form of a chunk: ``{"created_ns": <int>, "record": {...}}``."""
    return {"created_ns": created_ns, "record": record}


def chunk_parts(data: Any) -> tuple[int, dict[str, Any]] | None:
    """``(created_ns, record)`` of a parsed chunk; ``None`` if ``data`` is not one."""
    if (
        isinstance(data, dict)
        and isinstance(data.get("created_ns"), int)
        and isinstance(data.get("record"), dict)
    ):
        return data["created_ns"], data["record"]
    return None


def not_a_chunk(where: str) -> RunLogStoreError:
    """The error for a record at ``where`` that is not a chunk."""
    return RunLogStoreError(
        f"The run log record {where} is not a chunk of the form "
        '{"created_ns": <int>, "record": {...}}'
    )


def decode_chunk(data: Any, where: str) -> tuple[int, dict[str, Any]]:
    """``(created_ns, record)`` of a parsed chunk; else ``RunLogStoreError`` naming ``where``."""
    parts = chunk_parts(data)
    if parts is None:
        raise not_a_chunk(where)
    return parts


def run_summary(run_log: RunLog, version: str) -> dict[str, Any]:
    """The summary of ``run_log`` stored as ``RunLog.json`` in the given ``version``."""
    run = run_log.model_dump(mode="json", exclude={"steps", "parameters", "run_config"})
    run["run_config"] = {
        key: run_log.run_config[key] for key in SUMMARY_CONFIG_KEYS if key in run_log.run_config
    }
    return {"of": version, "run": run}


def summarised_run(data: Any, version: str | None) -> dict[str, Any] | None:
    """The run-level fields a stored summary holds, if it was made from ``RunLog.json`` in
    ``version``; ``None`` when it is missing, of another shape or out of date (its writer was
    killed before writing it, or a writer that keeps no summaries changed the run since)."""
    if version is None or not isinstance(data, dict) or data.get("of") != version:
        return None
    run = data.get("run")
    return run if isinstance(run, dict) else None


def attach_descendants(
    run_id: str,
    root: RunLog | StepLog | BranchLog,
    step_logs: Iterable[StepLog],
    branch_logs: Iterable[BranchLog],
) -> None:
    """Attach the step and branch logs below ``root`` to their parents, under ``root``.

    Every store that keeps one record per step and branch rebuilds a run's tree this way. The
    logs come in creation order, so every parent gets its children in that order; a log whose
    parent is missing is left out with a warning naming ``run_id``.
    """
    steps: dict[str, StepLog] = {}
    containers: dict[str, RunLog | BranchLog] = {}
    if isinstance(root, StepLog):
        steps[root.internal_name] = root
    else:
        containers["" if isinstance(root, RunLog) else root.internal_name] = root
    for step in step_logs:
        steps.setdefault(step.internal_name, step)
    for branch in branch_logs:
        containers.setdefault(branch.internal_name, branch)
    for name, container in containers.items():
        if container is root or not isinstance(container, BranchLog):
            continue
        parent = steps.get(parent_step_name(name))
        if parent is None:
            logger.warning("Run %s: branch log %r has no parent step", run_id, name)
        else:
            parent.branches[name] = container
    for name, step in steps.items():
        if step is root:
            continue
        owner = containers.get(parent_branch_name(name))
        if owner is None:
            logger.warning("Run %s: step log %r has no parent branch", run_id, name)
        else:
            owner.steps[name] = step
