"""The run log tells the truth on the cluster, and a run resumes anywhere.

Each pipeline is rendered with the argo executor, its run log store (``chunked-fs``) and
catalog (``file-system``) on a folder standing for a PersistentVolumeClaim every pod mounts,
and played by ``argo_harness.play`` -- stopped, terminated, past its deadline, with a pod
deleted, with a fan-out that crashes -- then the run log and what observers heard (the
``run_hooks`` plugin, in every container) are checked: the run ends FAIL with the reason,
nothing stays PROCESSING, and ``after_run`` is heard exactly once.

A run that failed on the cluster is then retried on a laptop (``magnus retry``, local
executor, the same store and catalog), and rendered back for Argo with ``--use-cached``: the
steps it reuses cost no pod.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_harness import (
    ARGUMENT_LIMIT,
    DEADLINE,
    DELETE,
    ERROR,
    FAILED,
    INTERRUPTION_MESSAGES,
    STOP,
    SUCCEEDED,
    TERMINATE,
    Interruption,
    Result,
    play,
)
from executor_argo.argo_helpers import command_of, prepare_run, tasks_by_name, templates_by_name
from fixtures.mlflow_server import MlflowServer, runs_by_name
from helpers import RUN_HOOKS, run_magnus
from magnus_executor_argo.exit_handler import RETRIES

from magnus.runlog.models import TERMINAL_STATUSES

pytestmark = pytest.mark.e2e

#: what ``truth_tasks.slow`` writes once it started, on the claim
STARTED = "claim/slow-started"
#: what the ``run_hooks`` observer writes in the project: the one file a container writes
#: outside its volumes (the harness watches, every container being read-only)
HOOKS_FILE = "run-hooks.jsonl"
#: the exit handler's container template (its first task calls it)
END_RUN = "magnus-end-run"

TASKS = '''
import time
from pathlib import Path


def slow():
    """Says it started, then works for long enough to be stopped."""
    time.sleep(1)  # long enough for its PROCESSING record to be stored
    Path("claim", "slow-started").write_text("yes")  # on the claim: the image is read-only
    time.sleep(120)


def flaky():
    """Fails until the project is fixed (the file `fixed` exists)."""
    if not Path("fixed").exists():
        raise RuntimeError("not fixed yet")


def count():
    return {"rows": 3}
'''


@dataclass
class Cluster:
    """A project whose run log store and catalog are on a folder every "pod" mounts."""

    root: Path
    check_workflow: Callable[[dict[str, Any]], None]

    @property
    def logs(self) -> Path:
        return self.root / "claim" / "run-logs"

    def write(self, name: str, text: str) -> str:
        (self.root / name).write_text(textwrap.dedent(text))
        return name

    def render(
        self, pipeline: str, parameters_file: str = "", config: str = "argo.yaml", **options: Any
    ) -> dict[str, Any]:
        """The workflow ``magnus execute -f pipeline -c config [options]`` writes, checked."""
        from magnus_executor_argo.render import render_document

        from magnus import entrypoints

        if options:
            prepared = entrypoints.prepare_run(
                configuration_file=config,
                pipeline_file=pipeline,
                parameters_file=parameters_file,
                **options,
            )
        else:
            prepared = prepare_run(pipeline, config, parameters_file)
        document = render_document(prepared.executor, prepared.context)
        self.check_workflow(document)
        return document

    def play(self, document: dict[str, Any], run_id: str, **kwargs: Any) -> Result:
        """Play a workflow as run ``run_id``, the ``run_hooks`` observer in every container;
        checked: its containers, read-only, wrote nothing outside their volumes but that
        observer's file."""
        result = play(
            document,
            cwd=self.root,
            arguments={"run_id": run_id},
            env={"MAGNUS_PLUGINS": "run_hooks"},
            grace=20,
            **kwargs,
        )
        stray = {node: paths for node, paths in result.written().items() if paths != [HOOKS_FILE]}
        assert not stray, f"written outside the volumes of read-only containers: {stray}"
        return result

    def show(self, run_id: str) -> dict[str, Any]:
        """The run log, as ``magnus runs show --json`` prints it."""
        from click.testing import CliRunner

        from magnus.cli import cli

        shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--json", "-c", "local.yaml"])
        assert shown.exit_code == 0, shown.output
        return json.loads(shown.stdout)  # type: ignore[no-any-return]

    def hooks(self) -> list[tuple[str, str]]:
        """``(hook, run status)`` of what the observers heard, across every process; then
        forgotten, for the next run."""
        path = self.root / "run-hooks.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines()]
        path.unlink()
        return [(record["hook"], record["status"]) for record in records]

    def started(self, name: str) -> Callable[[], bool]:
        """A condition: the file ``name`` exists in the project."""
        return (self.root / name).exists


def _commit(root: Path) -> None:
    for args in (["add", "-A"], ["commit", "-q", "-m", "truth"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def cluster(project: Path, check_workflow: Callable[[dict[str, Any]], None]) -> Cluster:
    """``argo.yaml`` renders for Argo, ``local.yaml`` runs locally: the same store and catalog."""
    claim = project / "claim"
    stores = {
        "run_log_store": {"type": "chunked-fs", "config": {"log_folder": str(claim / "run-logs")}},
        "catalog": {"type": "file-system", "config": {"catalog_location": str(claim / "catalog")}},
    }
    argo = {
        "type": "argo",
        "config": {
            "image": "registry.example.com/magnus:truth",
            "persistent_volumes": [{"name": "magnus-claim", "mount_path": str(claim)}],
            "security_context": {"readOnlyRootFilesystem": True},
        },
    }
    for name, executor in (("argo.yaml", argo), ("local.yaml", {"type": "local"})):
        text = yaml.safe_dump({"executor": executor, **stores}, sort_keys=False)
        (project / name).write_text(text)
    (project / "truth_tasks.py").write_text(TASKS)
    (project / "run_hooks.py").write_text(RUN_HOOKS)
    (project / ".gitignore").write_text("__pycache__/\nclaim/\nrun-hooks.jsonl\nfixed\n")
    _commit(project)
    return Cluster(project, check_workflow)


def _records(log: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step and branch log of a run log."""
    found: list[dict[str, Any]] = []
    pending = list(log["steps"].values())
    while pending:
        step = pending.pop()
        found.append(step)
        for branch in step.get("branches", {}).values():
            found.append(branch)
            pending.extend(branch.get("steps", {}).values())
    return found


def _nothing_open(log: dict[str, Any]) -> None:
    still_open = [r["internal_name"] for r in _records(log) if r["status"] not in TERMINAL_STATUSES]
    assert not still_open, f"still open: {still_open}"


def _templates_run(result: Result) -> list[str]:
    return [node.template for node in result.containers()]


# ---------------------------------------------------------------------------- stop, deadline


SLOW = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command: truth_tasks.slow
      next: after
    after:
      type: stub
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.parametrize("action", [STOP, DEADLINE, DELETE])
def test_a_stopped_timed_out_or_lost_step_ends_the_run_fail(cluster: Cluster, action: str) -> None:
    pipeline = cluster.write("slow.yaml", SLOW)
    interruption = Interruption(action, "slow", when=cluster.started(STARTED))
    result = cluster.play(cluster.render(pipeline), f"{action}-run", interruptions=[interruption])
    assert result.phase in (FAILED, ERROR) and result.interrupted == [action], result.trace()
    assert _templates_run(result) == ["slow", END_RUN], result.trace()
    assert result.exit_handler()[0].phase == SUCCEEDED, result.trace()
    # Watched, read-only, the containers that started and ended the run wrote the observer's file.
    assert [name.rsplit(".", 1)[-1] for name in result.written()] == ["slow", "end-run"]
    log = cluster.show(f"{action}-run")
    reason = f"the workflow ended {result.phase}: slow: {INTERRUPTION_MESSAGES[action]}"
    assert (log["status"], log["message"]) == ("FAIL", reason)
    assert list(log["steps"]) == ["slow"]
    # A stopped container closes its own step; a deleted one cannot: the exit handler does.
    assert log["steps"]["slow"]["status"] == "FAIL"
    expected = reason if action == DELETE else "interrupted by SIGTERM"
    assert log["steps"]["slow"]["message"] == expected
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "FAIL")]


def test_a_terminated_workflow_runs_no_exit_handler_and_end_run_ends_it(
    cluster: Cluster,
) -> None:
    pipeline = cluster.write("slow.yaml", SLOW)
    interruption = Interruption(TERMINATE, "slow", when=cluster.started(STARTED))
    result = cluster.play(cluster.render(pipeline), "terminated", interruptions=[interruption])
    assert result.phase == FAILED and not result.exit_handler(), result.trace()
    log = cluster.show("terminated")
    # Argo runs no exit handler after `argo terminate`: the stopped container closed its step.
    assert log["status"] == "PROCESSING"
    assert log["steps"]["slow"]["message"] == "interrupted by SIGTERM"
    # What the exit handler would have run, run by the operator.
    ended = run_magnus(
        "end_run", "terminated", "Terminated", "-c", "argo.yaml",
        cwd=cluster.root, env={"MAGNUS_PLUGINS": "run_hooks"},
    )  # fmt: skip
    assert ended.returncode == 0, ended.stderr
    log = cluster.show("terminated")
    assert (log["status"], log["message"]) == ("FAIL", "the workflow ended Terminated")
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "FAIL")]


# ---------------------------------------------------------------------------- the exit handler


BIG_MAP = """\
dag:
  start_at: each
  steps:
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: work
        steps:
          work:
            type: task
            command: truth_tasks.slow
            next: success
          success:
            type: success
          fail:
            type: fail
    success:
      type: success
    fail:
      type: fail
"""


def test_a_map_stopped_half_way_ends_the_run_whatever_the_size_of_its_failures(
    cluster: Cluster,
) -> None:
    pipeline = cluster.write("big.yaml", BIG_MAP)
    parameters = cluster.write("items.yaml", yaml.safe_dump({"items": list(range(800))}))
    document = cluster.render(pipeline, parameters)
    element = tasks_by_name(templates_by_name(document)["each"])["map"]["template"]
    # Stopped while the first element runs: Argo had started the others' pods with it.
    stop = Interruption(STOP, element, when=cluster.started(STARTED))
    result = cluster.play(document, "big-stop", interruptions=[stop])
    assert result.phase == FAILED and result.interrupted == [STOP], result.trace(output=False)
    # {{workflow.failures}} is over what one argument may hold: given whole, no container
    # could start with it (the harness fails such a container as Argo's executor does).
    assert len(result.failures.encode()) > ARGUMENT_LIMIT
    ended = result.exit_handler()
    assert [(node.name.rsplit(".", 1)[-1], node.phase) for node in ended] == [
        ("end-run", SUCCEEDED)
    ], result.trace()
    log = cluster.show("big-stop")
    assert log["status"] == "FAIL"
    # It was given the start of the list, which names some of the stopped elements.
    message = log["message"]
    assert message.startswith("the workflow ended Failed: map("), message
    assert message.endswith(f"{INTERRUPTION_MESSAGES[STOP]} (and more)"), message
    assert len(log["steps"]["each"]["branches"]) == 800
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "FAIL")]


def test_the_run_ends_when_the_exit_handlers_first_container_cannot(cluster: Cluster) -> None:
    pipeline = cluster.write("slow.yaml", SLOW)
    stop = Interruption(STOP, "slow", when=cluster.started(STARTED))
    # end-run's pod is lost on each of its attempts: the fallback ends the run.
    lost = Interruption(DELETE, END_RUN, times=RETRIES + 1)
    result = cluster.play(cluster.render(pipeline), "fallback", interruptions=[stop, lost])
    ended = [(node.name.rsplit(".", 1)[-1], node.phase) for node in result.exit_handler()]
    assert ended == [("end-run", ERROR)] * (RETRIES + 1) + [
        ("end-run-without-failures", SUCCEEDED)
    ], result.trace()
    log = cluster.show("fallback")
    assert (log["status"], log["message"]) == ("FAIL", "the workflow ended Failed")
    assert log["steps"]["slow"]["message"] == "interrupted by SIGTERM"
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "FAIL")]


# ---------------------------------------------------------------------------- MLflow


COUNT = """\
dag:
  start_at: count
  steps:
    count:
      type: task
      command: truth_tasks.count
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_the_mlflow_parent_run_closes_however_the_workflow_ends(
    cluster: Cluster,
    mlflow_server: MlflowServer,
    mlflow_env: dict[str, str],
    mlflow_client: Any,
    mlflow_experiment: str,
) -> None:
    from magnus_tracker_mlflow.runs import FINAL_STATUS

    config = yaml.safe_load((cluster.root / "argo.yaml").read_text())
    config["experiment_tracker"] = {
        "type": "mlflow",
        "config": {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment},
    }
    tracked = cluster.write("argo-mlflow.yaml", yaml.safe_dump(config))
    slow, count = cluster.write("slow.yaml", SLOW), cluster.write("count.yaml", COUNT)
    stop = Interruption(STOP, "slow", when=cluster.started(STARTED))
    stopped = cluster.play(
        cluster.render(slow, config=tracked), "tracked-stop", interruptions=[stop]
    )
    assert stopped.phase == FAILED, stopped.trace()
    succeeded = cluster.play(cluster.render(count, config=tracked), "tracked-success")
    assert succeeded.phase == SUCCEEDED, succeeded.trace()

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    for run_id, status in (("tracked-stop", "FAIL"), ("tracked-success", "SUCCESS")):
        assert cluster.show(run_id)["status"] == status
        parent = runs[run_id]
        # Closed by the exit handler (the stopped run) or the last step's container.
        assert parent.data.tags["magnus.status"] == status
        assert parent.info.status == FINAL_STATUS[status], (run_id, parent.info.status)
    assert runs["count"].info.status == FINAL_STATUS["SUCCESS"]  # the step's own run
    # The stopped step's own run, opened in a pod that was stopped, is closed by the exit
    # handler's process, which finds it on the server.
    assert runs["slow"].info.status == "KILLED"


# ---------------------------------------------------------------------------- a lost pod


ROUTED = """\
dag:
  start_at: slow
  steps:
    slow:
      type: task
      command: truth_tasks.slow
      on_failure: recover
      next: success
    recover:
      type: stub
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_a_deleted_pod_is_errored_and_takes_its_on_failure_route(cluster: Cluster) -> None:
    pipeline = cluster.write("routed.yaml", ROUTED)
    interruption = Interruption(DELETE, "slow", when=cluster.started(STARTED))
    result = cluster.play(cluster.render(pipeline), "deleted", interruptions=[interruption])
    assert result.phase == SUCCEEDED and result.interrupted == [DELETE], result.trace()
    slow = result.containers("slow")
    assert [(node.phase, node.message) for node in slow] == [(ERROR, "pod deleted")]
    assert "recover" in _templates_run(result), result.trace()
    log = cluster.show("deleted")
    assert log["status"] == "SUCCESS"
    # Killed outright, the step could not close its record: the exit handler did.
    assert log["steps"]["slow"]["status"] == "FAIL"
    assert log["steps"]["slow"]["message"] == "the workflow ended Succeeded: slow: pod deleted"
    assert log["steps"]["recover"]["status"] == "SUCCESS"
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "SUCCESS")]


# ---------------------------------------------------------------------------- a crashing fan-out


FANNED = """\
dag:
  start_at: each
  steps:
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: touch
        steps:
          touch:
            type: stub
            next: success
          success:
            type: success
          fail:
            type: fail
    success:
      type: success
    fail:
      type: fail
"""


def _bytes_of(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def test_a_fan_out_that_crashes_after_its_step_log_fails_the_run(cluster: Cluster) -> None:
    pipeline = cluster.write("fanned.yaml", FANNED)
    parameters = cluster.write("items.yaml", yaml.safe_dump({"items": list(range(1500))}))
    journal = cluster.logs / "crashed" / "records.journal"  # the run's records, appended
    # The fan-out's pod is lost once it wrote the map's step log (it creates the branch logs
    # next, 1500 of them).
    crash = Interruption(
        DELETE, "each-fan-out", when=lambda: b"/StepLog-each" in _bytes_of(journal)
    )
    result = cluster.play(cluster.render(pipeline, parameters), "crashed", interruptions=[crash])
    assert result.phase == FAILED and result.interrupted == [DELETE], result.trace()
    assert result.containers("each-fan-out")[0].phase == ERROR
    # No branch ran, yet the fan-in ran (after an Errored fan-out) and failed the map.
    assert _templates_run(result)[-2:] == ["each-fan-in", END_RUN], result.trace()
    log = cluster.show("crashed")
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["each", "fail"]
    each = log["steps"]["each"]
    # Killed before it recorded the elements (the fan-in cannot count on the branch logs there
    # are), or while it created the branch logs (those left are closed by the exit handler).
    assert each["status"] == "FAIL"
    assert "fan-out did not complete" in each["message"] or "did not finish" in each["message"]
    _nothing_open(log)
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "FAIL")]


# ---------------------------------------------------------------------------- resume anywhere


FLAKY = """\
dag:
  start_at: count
  steps:
    count:
      type: task
      command: truth_tasks.count
      next: flaky
    flaky:
      type: task
      command: truth_tasks.flaky
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def test_a_run_failed_on_argo_resumes_on_a_laptop_and_back_on_argo(cluster: Cluster) -> None:
    pipeline = cluster.write("flaky.yaml", FLAKY)
    result = cluster.play(cluster.render(pipeline), "on-argo")
    assert result.phase == FAILED, result.trace()
    assert cluster.show("on-argo")["status"] == "FAIL"
    cluster.hooks()
    (cluster.root / "fixed").write_text("yes")

    # On a laptop: the same store and catalog, the local executor.
    retried = run_magnus(
        "retry", "on-argo", "-c", "local.yaml", "--run-id", "on-laptop", cwd=cluster.root
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    laptop = cluster.show("on-laptop")
    assert (laptop["status"], laptop["original_run_id"]) == ("SUCCESS", "on-argo")
    assert laptop["steps"]["count"]["mock"] is True  # reused
    assert laptop["steps"]["flaky"]["attempts"][0]["status"] == "SUCCESS"
    assert laptop["parameters"]["rows"] == 3

    # Back on Argo: rendered with --use-cached, the reused step costs no pod.
    document = cluster.render(pipeline, use_cached="on-argo")
    root = tasks_by_name(templates_by_name(document)["magnus-dag"])
    assert list(root) == ["rerun-start", "flaky"]
    assert root["flaky"]["depends"] == "rerun-start.Succeeded"
    start = command_of(templates_by_name(document)["magnus-rerun-start"])
    assert start[1:4] == ["start_rerun", "{{workflow.parameters.run_id}}", "on-argo"]
    # With --strict, fingerprints decide once the run exists: every step keeps its task.
    strict = cluster.render(pipeline, use_cached="on-argo", strict_cache=True)
    assert list(tasks_by_name(templates_by_name(strict)["magnus-dag"])) == [
        "rerun-start", "count", "flaky"
    ]  # fmt: skip
    assert "--strict" in command_of(templates_by_name(strict)["magnus-rerun-start"])
    result = cluster.play(document, "back-on-argo")
    assert result.phase == SUCCEEDED, result.trace()
    assert _templates_run(result) == ["magnus-rerun-start", "flaky", END_RUN]
    log = cluster.show("back-on-argo")
    assert (log["status"], log["original_run_id"]) == ("SUCCESS", "on-argo")
    assert log["steps"]["count"]["mock"] is True
    assert log["steps"]["count"]["message"] == "reused from run on-argo"
    assert log["steps"]["flaky"]["status"] == "SUCCESS"
    assert log["parameters"]["rows"] == 3
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "SUCCESS")]

    # A re-run reusing every step is one pod (and the exit handler's), which ends the run.
    document = cluster.render(pipeline, use_cached="back-on-argo")
    assert list(tasks_by_name(templates_by_name(document)["magnus-dag"])) == ["rerun-start"]
    result = cluster.play(document, "all-reused")
    assert _templates_run(result) == ["magnus-rerun-start", END_RUN], result.trace()
    log = cluster.show("all-reused")
    assert log["status"] == "SUCCESS" and list(log["steps"]) == ["count", "flaky", "success"]
    assert log["steps"]["flaky"]["message"] == "reused from run back-on-argo"
    assert cluster.hooks() == [("before_run", "PROCESSING"), ("after_run", "SUCCESS")]


# ---------------------------------------------------------------------------- the reason


FAILED_NODE = {"displayName": "train", "message": "OOMKilled (exit code 137)", "phase": "Error"}
DAG_NODE = {"displayName": "wf", "message": "child 'wf-1' failed", "phase": "Failed"}
MANY = [{**FAILED_NODE, "displayName": f"s{i}"} for i in range(50)]


@pytest.mark.parametrize(
    ("failures", "reason"),
    [
        # Argo 3.5 and later quote the JSON once more; earlier ones do not.
        (json.dumps(json.dumps([DAG_NODE, FAILED_NODE])), ": train: OOMKilled (exit code 137)"),
        (json.dumps([FAILED_NODE, FAILED_NODE]), ": train: OOMKilled (exit code 137)"),
        ('"null"', ""),
        ("{{workflow.failures}}", ""),  # not filled in: no failures to name
        (json.dumps([{**FAILED_NODE, "displayName": f"s{i}"} for i in range(5)]), " (and 2 more)"),
        # Cut short (the exit handler is given the start of the list): what it names fully.
        (json.dumps(json.dumps(MANY))[:400], "; s2: OOMKilled (exit code 137) (and more)"),
        (
            json.dumps(MANY)[:220],
            ": s0: OOMKilled (exit code 137); s1: OOMKilled (exit code 137) (and more)",
        ),
        (json.dumps(json.dumps(MANY))[:40], ""),  # not one node whole
    ],
)
def test_the_reason_names_the_failed_nodes(failures: str, reason: str) -> None:
    from magnus.orchestrated_lifecycle import workflow_end_reason

    text = workflow_end_reason("Error", failures)
    assert text.startswith("the workflow ended Error") and text.endswith(reason), text
