"""Real pipelines with the MLflow tracker, read back from a real MLflow server.

In-process SDK runs cover the mapping in detail; command-line runs cover a map (examples/map.yaml),
branches and map elements in their own processes (``enable_parallel``) and a server that dies
in the middle of a run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.mlflow_server import (
    MlflowServer,
    artifact_json,
    history,
    runs_by_name,
    write_config,
)
from helpers import show_run

from magnus import Pipeline, PythonTask, ShellTask, Stub

TRACKED = '''
import json
import os
import signal
import socket
import time
from pathlib import Path

import mlflow

import magnus


def train(lr: float, big: str) -> dict:
    for epoch, loss in enumerate([0.9, 0.5, 0.2]):
        magnus.track_this(step=epoch, loss=loss)
    magnus.track_this(accuracy=0.75, epochs=3, optimizer="adam", config={"layers": [64, 32]})
    with magnus.get_experiment_tracker_context() as run:
        mlflow.log_metric("direct", 1.5, step=7)
        active = mlflow.active_run().info.run_id
    return {"model": "m1", "score": 0.8, "report": "r" * 7000, "seen": run.info.run_id,
            "active": active}


def broken() -> None:
    magnus.track_this(attempted=1)
    raise RuntimeError("broken on purpose")


def score(chunk: int) -> dict:
    magnus.track_this(step=chunk, value=chunk * 1.5)
    with magnus.get_experiment_tracker_context() as run:
        mlflow.log_metric("from_context", chunk)
    return {"scored": chunk, "pid": os.getpid(), "seen": run.info.run_id}


def fit() -> dict:
    magnus.track_this(fitted=1)
    return {"left_pid": os.getpid()}


def before() -> dict:
    magnus.track_this(step=0, loss=1.0)
    magnus.track_this(step=1, loss=0.5)
    return {"first": 1}


def kill_server() -> dict:
    """Kill the test's own MLflow server (its process group, from the pid file) mid-run."""
    pid, port = (int(x) for x in Path("server.pid").read_text().split())
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            break
        time.sleep(0.05)
    magnus.track_this(step=0, during=2.0)
    return {"second": 2}


def after() -> dict:
    magnus.track_this(step=0, last=3.0, note="still here")
    return {"third": 3}


def interrupted() -> None:
    magnus.track_this(started=1)
    raise KeyboardInterrupt
'''


@pytest.fixture
def tracked(project: Path, user_module: Callable[[str, str], Any]) -> Any:
    """The pipeline functions, importable in this process and in the magnus processes."""
    return user_module("tracked", TRACKED)


def git_head(folder: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


def step_runs(runs: dict[str, Any], parent: Any) -> dict[str, Any]:
    """The child runs of ``parent``, by step internal name."""
    return {
        name: run
        for name, run in runs.items()
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }


def test_sdk_pipeline_in_mlflow(
    project: Path,
    tracked: Any,
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_experiment: str,
    tmp_path: Path,
) -> None:
    (project / "params.yaml").write_text(
        yaml.safe_dump({"lr": 0.01, "big": "b" * 7000, "layers": [64, 32], "name": "exp"})
    )
    config = write_config(
        project, {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment}
    )
    pipeline = Pipeline(
        steps=[
            PythonTask(name="train", function="tracked.train"),
            ShellTask(
                name="shell", command="export MAGNUS_TRACK_F1=0.5 MAGNUS_TRACK_F1_STEP_2=0.7"
            ),
            PythonTask(name="broken", function="tracked.broken", on_failure="recover"),
            Stub(name="recover"),
        ]
    )
    run_log = pipeline.execute(
        configuration_file=config, run_id="sdk-run", tag="nightly", parameters_file="params.yaml"
    )
    assert run_log is not None and run_log.status == "SUCCESS"

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    parent = runs["sdk-run"]
    children = step_runs(runs, parent)
    assert set(runs) == {"sdk-run", *children}
    assert set(children) == {"train", "shell", "broken", "recover"}  # no run for success

    # the parent: which run, which code, its initial parameters, its outcome
    tags = parent.data.tags
    assert tags["magnus.run_id"] == "sdk-run" and tags["magnus.tag"] == "nightly"
    assert tags["magnus.kind"] == "run" and tags["magnus.status"] == "SUCCESS"
    assert tags["mlflow.source.git.commit"] == git_head(project)
    code = run_log.steps["train"].code_identities[0]
    assert tags["magnus.code_identifier_dependable"] == str(code.code_identifier_dependable)
    assert tags["magnus.dag_hash"] == run_log.dag_hash
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"lr": "0.01", "name": "exp"}
    assert artifact_json(mlflow_client, parent.info.run_id, "parameters.json", tmp_path) == {
        "big": "b" * 7000,
        "layers": [64, 32],
    }

    # the steps: same experiment, their outputs, metrics at their steps, status
    for child in children.values():
        assert child.info.experiment_id == parent.info.experiment_id
        assert child.data.tags["magnus.run_id"] == "sdk-run"
    train = children["train"]
    train_id = train.info.run_id
    assert train.info.status == "FINISHED" and train.data.tags["magnus.status"] == "SUCCESS"
    assert history(mlflow_client, train_id, "loss") == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert history(mlflow_client, train_id, "accuracy") == [(0, 0.75)]
    assert history(mlflow_client, train_id, "epochs") == [(0, 3.0)]  # ints are metrics
    assert history(mlflow_client, train_id, "direct") == [(7, 1.5)]  # from user code
    assert train.data.params == {
        "optimizer": "adam",
        "model": "m1",
        "score": "0.8",
        "seen": train_id,
        "active": train_id,
    }
    assert artifact_json(mlflow_client, train_id, "metrics.json", tmp_path / "m") == {
        "config": {"0": {"layers": [64, 32]}}
    }
    assert artifact_json(mlflow_client, train_id, "parameters.json", tmp_path / "p") == {
        "report": "r" * 7000
    }
    shell = children["shell"].info.run_id
    assert history(mlflow_client, shell, "F1") == [(0, 0.5), (2, 0.7)]
    broken = children["broken"]
    assert broken.info.status == "FAILED" and broken.data.tags["magnus.status"] == "FAIL"
    assert "broken on purpose" in broken.data.tags["magnus.error"]
    assert history(mlflow_client, broken.info.run_id, "attempted") == [(0, 1.0)]
    assert children["recover"].data.tags["magnus.step_type"] == "stub"

    # the run log says where to look in MLflow
    recorded = run_log.run_config["experiment_tracker"]
    assert recorded["service_name"] == "mlflow"  # merged into the tracker's record
    assert recorded["mlflow"] == {
        "tracking_uri": mlflow_server.url,
        "experiment_id": parent.info.experiment_id,
        "parent_run_id": parent.info.run_id,
    }
    for name, child in children.items():
        assert getattr(run_log.steps[name], "mlflow_run_id", None) == child.info.run_id
    assert run_log.steps["train"].user_defined_metrics["loss"] == {"0": 0.9, "1": 0.5, "2": 0.2}


def test_without_nested_runs_steps_share_the_parent_run(
    project: Path, tracked: Any, mlflow_server: MlflowServer, mlflow_client: Any
) -> None:
    config = write_config(project, {"tracking_uri": mlflow_server.url, "nested_runs": False})
    tag = f"flat-{uuid.uuid4().hex[:8]}"  # the experiment is named after the run's tag
    pipeline = Pipeline(
        steps=[
            PythonTask(name="before", function="tracked.before"),
            PythonTask(name="after", function="tracked.after"),
        ]
    )
    run_log = pipeline.execute(configuration_file=config, run_id="flat-run", tag=tag)
    assert run_log is not None and run_log.status == "SUCCESS"

    (parent,) = runs_by_name(mlflow_client, tag).values()
    assert parent.info.run_name == "flat-run" and parent.info.status == "FINISHED"
    assert history(mlflow_client, parent.info.run_id, "loss") == [(0, 1.0), (1, 0.5)]
    assert history(mlflow_client, parent.info.run_id, "last") == [(0, 3.0)]
    assert parent.data.params == {"before/first": "1", "after/third": "3", "note": "still here"}
    for name in ("before", "after"):
        assert getattr(run_log.steps[name], "mlflow_run_id", None) == parent.info.run_id


def test_a_stopped_run_leaves_no_mlflow_run_open(
    project: Path,
    tracked: Any,
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_experiment: str,
) -> None:
    config = write_config(
        project, {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment}
    )
    pipeline = Pipeline(
        steps=[
            PythonTask(name="before", function="tracked.before"),
            PythonTask(name="interrupted", function="tracked.interrupted"),
            PythonTask(name="after", function="tracked.after"),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(configuration_file=config, run_id="stopped-run")

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    parent = runs["stopped-run"]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["magnus.status"] == "FAIL"
    children = step_runs(runs, parent)
    assert set(children) == {"before", "interrupted"}
    assert children["before"].info.status == "FINISHED"
    assert children["interrupted"].info.status == "KILLED"


MAP_CHUNKS = [0, 10, 20]


def test_map_through_the_command_line(
    project: Path,
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_env: dict[str, str],
    run_magnus: Any,
) -> None:
    config = write_config(project, {"server_url": mlflow_server.url})
    tag = f"map-{uuid.uuid4().hex[:8]}"
    result = run_magnus(
        "execute", "-f", "examples/map.yaml", "-c", config, "--run-id", "map-run", "--tag", tag,
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout

    runs = runs_by_name(mlflow_client, tag)
    parent = runs["map-run"]
    assert parent.data.tags["magnus.pipeline_file"] == "examples/map.yaml"
    assert parent.data.tags["magnus.status"] == "SUCCESS"
    assert parent.data.params == {}  # map.yaml starts with no parameters
    children = step_runs(runs, parent)
    elements = [
        f"render all.{chunk}.{step}" for chunk in MAP_CHUNKS for step in ("render", "shout")
    ]
    assert set(children) == {"make chunks", "summarise", *elements}
    for chunk in MAP_CHUNKS:
        render = children[f"render all.{chunk}.render"]
        assert render.data.params == {"rendered": str(chunk * 2)}
        assert render.data.tags["magnus.branch"] == f"render all.{chunk}"
        assert render.data.tags["magnus.step_name"] == "render"
    assert children["summarise"].data.params == {"total": str(sum(MAP_CHUNKS) * 2)}

    log = show_run("map-run", project)
    assert log["run_config"]["experiment_tracker"]["mlflow"]["parent_run_id"] == parent.info.run_id
    branch = log["steps"]["render all"]["branches"]["render all.10"]
    assert branch["steps"]["render all.10.render"]["mlflow_run_id"] == (
        children["render all.10.render"].info.run_id
    )


PARALLEL_PIPELINE = {
    "dag": {
        "start_at": "make chunks",
        "steps": {
            "make chunks": {
                "type": "task",
                "command": "examples.functions.make_chunks",
                "next": "fan",
            },
            "fan": {
                "type": "map",
                "iterate_on": "chunks",
                "iterate_as": "chunk",
                "next": "both",
                "branch": {
                    "start_at": "score",
                    "steps": {
                        "score": {"type": "task", "command": "tracked.score", "next": "success"},
                        "success": {"type": "success"},
                        "fail": {"type": "fail"},
                    },
                },
            },
            "both": {
                "type": "parallel",
                "next": "success",
                "branches": {
                    "left": {
                        "start_at": "fit",
                        "steps": {
                            "fit": {"type": "task", "command": "tracked.fit", "next": "success"},
                            "success": {"type": "success"},
                            "fail": {"type": "fail"},
                        },
                    },
                    "right": {
                        "start_at": "fit",
                        "steps": {
                            "fit": {
                                "type": "task",
                                "command_type": "shell",
                                "command": "export MAGNUS_TRACK_size=2",
                                "next": "success",
                            },
                            "success": {"type": "success"},
                            "fail": {"type": "fail"},
                        },
                    },
                },
            },
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
}


def test_branches_in_other_processes_log_into_the_same_parent(
    project: Path,
    tracked: Any,
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_experiment: str,
    run_magnus: Any,
) -> None:
    (project / "fan.yaml").write_text(yaml.safe_dump(PARALLEL_PIPELINE))
    (project / "params.yaml").write_text(yaml.safe_dump({"count": 2}))
    config = write_config(
        project,
        {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment},
        executor={"type": "local", "config": {"enable_parallel": True, "max_workers": 2}},
    )
    result = run_magnus(
        "execute", "-f", "fan.yaml", "-c", config, "-p", "params.yaml", "--run-id", "fan-run",
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    parent = runs["fan-run"]
    assert parent.data.tags["magnus.status"] == "SUCCESS" and parent.info.status == "FINISHED"
    children = step_runs(runs, parent)
    assert set(runs) == {"fan-run", *children}  # one parent: every process found it
    assert set(children) == {
        "make chunks",
        "fan.0.score",
        "fan.10.score",
        "both.left.fit",
        "both.right.fit",
    }
    pids = set()
    for chunk in (0, 10):
        element = children[f"fan.{chunk}.score"]
        assert element.info.status == "FINISHED"
        assert history(mlflow_client, element.info.run_id, "value") == [(chunk, chunk * 1.5)]
        assert history(mlflow_client, element.info.run_id, "from_context") == [(0, chunk)]
        assert element.data.params["seen"] == element.info.run_id
        pids.add(element.data.params["pid"])
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each element in its own process
    assert history(mlflow_client, children["both.left.fit"].info.run_id, "fitted") == [(0, 1.0)]
    assert history(mlflow_client, children["both.right.fit"].info.run_id, "size") == [(0, 2.0)]

    log = show_run("fan-run", project)
    element = log["steps"]["fan"]["branches"]["fan.10"]["steps"]["fan.10.score"]
    assert element["mlflow_run_id"] == children["fan.10.score"].info.run_id


KILL_PIPELINE = {
    "dag": {
        "start_at": "before",
        "steps": {
            "before": {"type": "task", "command": "tracked.before", "next": "kill"},
            "kill": {"type": "task", "command": "tracked.kill_server", "next": "after"},
            "after": {"type": "task", "command": "tracked.after", "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
}


def metrics_in_store(server: MlflowServer, run_id: str) -> list[tuple[str, int, float]]:
    """What the dead server's sqlite store holds for ``run_id`` (read without the server)."""
    with sqlite3.connect(server.folder / "mlflow.db") as db:
        rows = db.execute(
            "SELECT key, step, value FROM metrics WHERE run_uuid = ? ORDER BY key, step", (run_id,)
        ).fetchall()
    return [(str(k), int(s), float(v)) for k, s, v in rows]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_server_killed_mid_run(
    strict: bool,
    project: Path,
    tracked: Any,
    mlflow_server_factory: Callable[[], MlflowServer],
    mlflow_env: dict[str, str],
    run_magnus: Any,
) -> None:
    server = mlflow_server_factory()
    (project / "server.pid").write_text(f"{server.pid} {server.url.rsplit(':', 1)[1]}")
    (project / "kill.yaml").write_text(yaml.safe_dump(KILL_PIPELINE))
    config = write_config(project, {"tracking_uri": server.url, "strict": strict})
    result = run_magnus(
        "execute", "-f", "kill.yaml", "-c", config, "--run-id", "killed", cwd=project,
    )  # fmt: skip
    log = show_run("killed", project)
    steps = log["steps"]

    # before the kill: in MLflow, and the run log knows where
    before = steps["before"]
    assert before["status"] == "SUCCESS" and "tracker_error" not in before
    assert metrics_in_store(server, before["mlflow_run_id"]) == [("loss", 0, 1.0), ("loss", 1, 0.5)]
    assert before["user_defined_metrics"] == {"loss": {"0": 1.0, "1": 0.5}}

    # the step that killed it: its metrics are in the run log all the same
    kill = steps["kill"]
    assert kill["user_defined_metrics"] == {"during": 2.0}
    assert "could not be reached" in result.stderr
    if strict:
        assert result.returncode == 1, result.stderr
        assert log["status"] == "FAIL"
        assert kill["status"] == "FAIL"
        assert "could not publish the metrics of step 'kill'" in kill["message"]
        assert "could not be reached" in kill["message"]
        assert "after" not in steps
        return

    assert result.returncode == 0, result.stderr + result.stdout
    assert log["status"] == "SUCCESS"
    assert kill["status"] == "SUCCESS" and "could not be reached" in kill["tracker_error"]
    after = steps["after"]
    assert after["status"] == "SUCCESS" and "MLflow" in after["tracker_error"]
    assert after["user_defined_metrics"] == {"last": 3.0, "note": "still here"}
    assert log["parameters"] == {"first": 1, "second": 2, "third": 3}


ORCHESTRATED_PIPELINE = {
    "dag": {
        "start_at": "fan",
        "steps": {
            "fan": {
                "type": "map",
                "iterate_on": "chunks",
                "iterate_as": "chunk",
                "next": "success",
                "branch": PARALLEL_PIPELINE["dag"]["steps"]["fan"]["branch"],
            },
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
}


def test_an_orchestrated_run_has_one_parent_run_closed_by_its_last_step(
    project: Path,
    tracked: Any,
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_experiment: str,
    run_magnus: Any,
) -> None:
    """Containers as Argo starts them: the map's elements side by side, then the last step."""
    from concurrent.futures import ThreadPoolExecutor

    (project / "fan.yaml").write_text(yaml.safe_dump(ORCHESTRATED_PIPELINE))
    (project / "params.yaml").write_text(yaml.safe_dump({"chunks": [0, 10, 20]}))
    config = write_config(
        project, {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment}
    )
    common = ["--file", "fan.yaml", "--config-file", config, "--parameters-file", "params.yaml"]

    def call(*args: str) -> None:
        result = run_magnus(*args, *common, cwd=project)
        assert result.returncode == 0, result.stdout + result.stderr

    # The first container starts the run: the parent run exists and is recorded before any step.
    call("fan", "argo-run", "fan", "--mode", "out")
    recorded = show_run("argo-run", project)["run_config"]["experiment_tracker"]["mlflow"]
    (parent,) = runs_by_name(mlflow_client, mlflow_experiment).values()
    assert parent.info.run_id == recorded["parent_run_id"]
    assert parent.info.status == "RUNNING"

    elements = [
        ("execute_single_node", "argo-run", "fan.map_variable_placeholder.score",
         "--map-variable", json.dumps({"chunk": chunk}))
        for chunk in (0, 10, 20)
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda args: call(*args), elements))
    for chunk in (0, 10, 20):
        call(
            "execute_single_node", "argo-run", "fan.map_variable_placeholder.success",
            "--map-variable", json.dumps({"chunk": chunk}),
        )  # fmt: skip
    call("fan", "argo-run", "fan", "--mode", "in")
    call("execute_single_node", "argo-run", "success")

    runs = runs_by_name(mlflow_client, mlflow_experiment)
    parent = runs["argo-run"]
    children = step_runs(runs, parent)
    assert set(runs) == {"argo-run", *children}  # the elements found the one parent
    assert set(children) == {"fan.0.score", "fan.10.score", "fan.20.score"}
    assert all(child.info.status == "FINISHED" for child in children.values())
    # The container of the last step ended the run, and closed the parent with its status.
    assert parent.data.tags["magnus.status"] == "SUCCESS"
    assert parent.info.status == "FINISHED"
