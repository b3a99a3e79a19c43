"""What a process knows of one magnus run's MLflow side, and where it records it.

The parent run's id is recorded in ``run_config`` (:data:`RUN_CONFIG_KEY`), which every process
running a branch or a step reads; so parallel branches and map elements in other processes add
their child runs to the same parent. This module holds that bookkeeping and the tags that say
which magnus run or step an MLflow run is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magnus.exceptions import MagnusError
from magnus_tracker_mlflow import values
from magnus_tracker_mlflow.client import BoundedClient, hide_password

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode

PARENT_TAG = "mlflow.parentRunId"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
SOURCE_NAME_TAG = "mlflow.source.name"
TAG_PREFIX = "magnus."
RUN_ID_TAG = "magnus.run_id"
KIND_TAG = "magnus.kind"
STATUS_TAG = "magnus.status"

#: where the ids go in ``run_config["experiment_tracker"]``
RUN_CONFIG_KEY = "mlflow"
#: the extra field of a step log holding its MLflow run id
STEP_LOG_FIELD = "mlflow_run_id"

#: magnus status -> MLflow's; a run still PROCESSING at its end was stopped (Ctrl-C, a crash)
FINAL_STATUS = {"SUCCESS": "FINISHED", "FAIL": "FAILED", "PROCESSING": "KILLED"}


@dataclass
class RunState:
    """What this process knows of one magnus run's MLflow side."""

    magnus_run_id: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    #: resolved step internal name -> the step's MLflow run id
    step_runs: dict[str, str] = field(default_factory=dict)
    #: step runs this process closed
    closed_step_runs: set[str] = field(default_factory=set)
    #: MLflow run id -> the params logged there (immutable on the server)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (MLflow run id, artifact file) -> the JSON document written there so far
    artifacts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def ensure_experiment(client: BoundedClient, state: RunState, name: str) -> str:
    """The id of the experiment ``name``, creating the experiment when it does not exist yet."""
    if state.experiment_id is not None:
        return state.experiment_id
    from mlflow.exceptions import MlflowException

    experiment = client.call("look up the experiment", "get_experiment_by_name", name)
    if experiment is None:
        try:
            state.experiment_id = str(
                client.call(f"create the experiment {name!r}", "create_experiment", name)
            )
            return state.experiment_id
        except MlflowException as exc:
            # Another process (a parallel branch) created it first.
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.call("look up the experiment", "get_experiment_by_name", name)
    if experiment.lifecycle_stage != "active":
        raise MagnusError(
            f"The MLflow experiment {name!r} is deleted; restore it in MLflow or set "
            "another experiment_name"
        )
    state.experiment_id = str(experiment.experiment_id)
    return state.experiment_id


def recorded_ids(context: RunContext) -> dict[str, Any]:
    """What an earlier process recorded in ``run_config`` of this run (may be nothing)."""
    run_config = context.run_log_store.get_run_config(context.run_id)
    tracker = run_config.get("experiment_tracker") or {}
    recorded = tracker.get(RUN_CONFIG_KEY) if isinstance(tracker, Mapping) else None
    return dict(recorded) if isinstance(recorded, Mapping) else {}


def record_ids(context: RunContext, state: RunState, uri: str) -> None:
    """Write the experiment and parent run ids into ``run_config``, merging what is there.

    ``set_run_config`` merges top-level keys only, so the tracker's block is read, extended
    and written back whole.
    """
    store = context.run_log_store
    tracker = dict(store.get_run_config(context.run_id).get("experiment_tracker") or {})
    tracker[RUN_CONFIG_KEY] = {
        "tracking_uri": hide_password(uri),
        "experiment_id": state.experiment_id,
        "parent_run_id": state.parent_run_id,
    }
    store.set_run_config(context.run_id, {"experiment_tracker": tracker})


def run_tags(context: RunContext | None, magnus_run_id: str) -> dict[str, str]:
    """The tags of a magnus run's parent run: which run, code, pipeline and dag it was."""
    tags = {RUN_ID_TAG: magnus_run_id, KIND_TAG: "run", STATUS_TAG: "PROCESSING"}
    if context is None:
        return tags
    tags["magnus.tag"] = context.tag
    tags["magnus.pipeline_file"] = context.pipeline_file
    tags["magnus.dag_hash"] = context.dag_hash
    if context.original_run_id:
        tags["magnus.original_run_id"] = context.original_run_id
    if context.pipeline_file:
        tags[SOURCE_NAME_TAG] = context.pipeline_file
    if context.code_identities:
        code = context.code_identities[0]
        tags["magnus.code_identifier"] = code.code_identifier or ""
        tags["magnus.code_identifier_type"] = code.code_identifier_type
        tags["magnus.code_identifier_dependable"] = str(code.code_identifier_dependable)
        if code.code_identifier_type == "git" and code.code_identifier:
            tags[GIT_COMMIT_TAG] = code.code_identifier
    # An empty tag (no tag, no pipeline file for an SDK run) says nothing: leave it out.
    return {key: values.tag_text(value) for key, value in tags.items() if value}


def step_tags(
    step_name: str,
    parent_run_id: str,
    magnus_run_id: str,
    context: RunContext | None,
    node: BaseNode | None,
) -> dict[str, str]:
    """The tags of a step's child run: its parent run, which step, in which branch."""
    tags = {
        PARENT_TAG: parent_run_id,
        RUN_ID_TAG: magnus_run_id,
        KIND_TAG: "step",
        STATUS_TAG: "PROCESSING",
        "magnus.step": step_name,
    }
    if node is not None:
        tags["magnus.step_name"] = node.name
        tags["magnus.step_type"] = node.node_type
    if context is not None and context.code_identities:
        code = context.code_identities[0]
        if code.code_identifier_type == "git" and code.code_identifier:
            tags[GIT_COMMIT_TAG] = code.code_identifier
    if "." in step_name:
        tags["magnus.branch"] = step_name.rsplit(".", 1)[0]
    return {key: values.tag_text(value) for key, value in tags.items()}
