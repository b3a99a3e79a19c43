"""Rendered workflows run: the harness plays Argo, and the run log equals a local run's.

Each pipeline is rendered with the argo executor, its run log store (``chunked-s3``) and
catalog (``s3``) on the moto server, then played by ``argo_harness.play``: every container
runs ``magnus execute_single_node`` or ``magnus fan`` in a process of its own, exactly as the
pods would. The same pipeline then runs locally (``magnus execute``, executor ``local``) with
the same stores, and the two run logs must be the same once what necessarily differs is set
aside: run ids, times and durations, code identities, and the executor (and the name of the
configuration file) in ``run_config``. Execution logs are compared by content, with the run id
masked in it.

The first tests check the harness itself on small synthetic workflows (no magnus inside).
"""

from __future__ import annotations

import copy
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
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
    OMITTED,
    SKIPPED,
    STOP,
    SUCCEEDED,
    TERMINATE,
    TOO_LONG,
    HarnessError,
    Interruption,
    Result,
    evaluate_depends,
    evaluate_expression,
    play,
)
from executor_argo.argo_helpers import prepare_run
from fixtures.s3_server import REGION, s3_client
from helpers import run_hooks_seen, run_magnus, write_run_hooks

from magnus.fingerprints import FINGERPRINT_PARTS, IMAGE_ENV

# ============================================================================ the harness itself


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _container(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "python", "command": _python(code)}, **extra}


def _workflow(templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "harness-"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def _dag(name: str, *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "dag": {"tasks": list(tasks), **extra}}


OK = _container("ok", "pass")
BAD = _container("bad", "raise SystemExit(3)")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a.Succeeded", True),
        ("a.Failed", False),
        ("a.Failed || b.Failed", True),
        ("a.Succeeded && b.Succeeded", False),
        ("a.Succeeded && (b.Failed || b.Errored)", True),
        ("(a.Failed || b.Failed) && !c.Skipped", False),
        ("a.Failed || b.Failed && c.Skipped", True),  # && binds tighter than ||
        ("a", True),  # a bare name: Succeeded, Skipped or Daemoned
        ("c", True),
        ("b", False),
        ("fan-out.Failed || ((map.Succeeded || map.Failed || map.Skipped))", True),
    ],
)
def test_depends_expressions(expression: str, expected: bool) -> None:
    phases = {"a": "Succeeded", "b": "Failed", "c": "Skipped", "fan-out": "Succeeded"}
    phases["map"] = "Skipped"
    assert evaluate_depends(expression, lambda task, result: phases[task] == result) is expected


@pytest.mark.parametrize("expression", ["a.Succeeded &&", "(a.Succeeded", "a.Good", "a ||| b"])
def test_a_malformed_depends_is_an_error(expression: str) -> None:
    with pytest.raises(HarnessError):
        evaluate_depends(expression, lambda task, result: True)


def test_a_failure_routes_through_depends_and_omitted_tasks(tmp_path: Path) -> None:
    workflow = _workflow(
        [
            _dag(
                "main",
                {"name": "a", "template": "bad"},
                {"name": "b", "template": "ok", "depends": "a.Succeeded"},
                {"name": "c", "template": "ok", "depends": "a.Failed"},
                {"name": "d", "template": "ok", "depends": "b.Succeeded || c.Succeeded"},
            ),
            OK,
            BAD,
        ]
    )
    result = play(workflow, cwd=tmp_path)
    assert result.phase == SUCCEEDED, result.trace()
    phases = result.phases()
    assert phases["harness-harness.a"] == FAILED
    assert phases["harness-harness.b"] == OMITTED
    assert phases["harness-harness.c"] == phases["harness-harness.d"] == SUCCEEDED


def test_an_omitted_target_inherits_the_failure(tmp_path: Path) -> None:
    workflow = _workflow(
        [
            _dag(
                "main",
                {"name": "a", "template": "bad"},
                {"name": "b", "template": "ok", "depends": "a.Succeeded"},
                {"name": "c", "template": "ok", "depends": "b.Succeeded"},
            ),
            OK,
            BAD,
        ]
    )
    result = play(workflow, cwd=tmp_path)
    assert result.phase == FAILED
    assert [n.phase for n in result.nodes if n.kind == "Task"] == [OMITTED, OMITTED]


def test_fail_fast_stops_new_waves_once_a_target_failed(tmp_path: Path) -> None:
    tasks = [
        {"name": "a", "template": "bad"},
        {"name": "b", "template": "ok"},
        {"name": "c", "template": "ok", "depends": "b.Succeeded"},
    ]
    stopped = play(_workflow([_dag("main", *tasks), OK, BAD]), cwd=tmp_path)
    assert stopped.phase == FAILED
    # a and b start together; c would come after a failed target: never started
    assert [n.name for n in stopped.containers()] == ["harness-harness.a", "harness-harness.b"]
    finished = play(_workflow([_dag("main", *tasks, failFast=False), OK, BAD]), cwd=tmp_path)
    assert finished.phase == FAILED
    assert len(finished.containers()) == 3


def test_with_param_fans_out_over_an_output_file_each_pod_has_its_own(tmp_path: Path) -> None:
    produce = _container(
        "produce",
        """
        import os, pathlib
        pathlib.Path(os.environ["OUT"]).write_text('[0, 1, "two"]')
        """,
        outputs={"parameters": [{"name": "list", "valueFrom": {"path": "/tmp/o.txt"}}]},
    )
    produce["container"]["env"] = [{"name": "OUT", "value": "/tmp/o.txt"}]
    show = _container(
        "show",
        "import os; print(os.environ['SEEN'])",
        inputs={"parameters": [{"name": "outer"}, {"name": "i"}]},
    )
    show["container"]["env"] = [
        {"name": "SEEN", "value": "{{inputs.parameters.outer}}/{{inputs.parameters.i}}"}
    ]
    body = _dag(
        "body",
        {
            "name": "each",
            "template": "show",
            "depends": "produce.Succeeded",
            "withParam": "{{tasks.produce.outputs.parameters.list}}",
            "arguments": {
                "parameters": [
                    {"name": "outer", "value": "{{inputs.parameters.outer}}"},
                    {"name": "i", "value": "{{item}}"},
                ]
            },
        },
        {"name": "produce", "template": "produce"},
        inputs={"parameters": [{"name": "outer"}]},
    )
    body["inputs"] = body["dag"].pop("inputs")
    main = _dag(
        "main",
        {
            "name": "body",
            "template": "body",
            "arguments": {"parameters": [{"name": "outer", "value": "{{workflow.parameters.o}}"}]},
        },
    )
    workflow = _workflow(
        [main, body, produce, show], arguments={"parameters": [{"name": "o", "value": "x"}]}
    )
    result = play(workflow, cwd=tmp_path, arguments={"o": "y"})
    assert result.phase == SUCCEEDED, result.trace()
    assert [n.stdout.strip() for n in result.containers("show")] == ["y/0", "y/1", "y/two"]
    assert result.containers("produce")[0].env["OUT"] != "/tmp/o.txt"


def test_an_empty_with_param_skips_the_task(tmp_path: Path) -> None:
    produce = _container(
        "produce",
        "pass",  # writes nothing: the default is used
        outputs={"parameters": [{"name": "l", "valueFrom": {"path": "/tmp/o", "default": "[]"}}]},
    )
    main = _dag(
        "main",
        {"name": "produce", "template": "produce"},
        {
            "name": "each",
            "template": "ok",
            "depends": "produce.Succeeded",
            "withParam": "{{tasks.produce.outputs.parameters.l}}",
        },
        {"name": "after", "template": "ok", "depends": "each.Skipped"},
    )
    result = play(_workflow([main, produce, OK]), cwd=tmp_path)
    assert result.phase == SUCCEEDED, result.trace()
    assert result.phases()["harness-harness.each"] == SKIPPED
    assert result.phases()["harness-harness.after"] == SUCCEEDED


def test_retries_number_the_attempts(tmp_path: Path) -> None:
    flaky = _container(
        "flaky",
        """
        import os
        print(os.environ["ATTEMPT"])
        raise SystemExit(0 if os.environ["ATTEMPT"] == "3" else 1)
        """,
        retryStrategy={"limit": "3", "retryPolicy": "Always"},
    )
    flaky["container"]["env"] = [{"name": "ATTEMPT", "value": "{{=asInt(retries) + 1}}"}]
    result = play(
        _workflow([_dag("main", {"name": "f", "template": "flaky"}), flaky]), cwd=tmp_path
    )
    assert result.phase == SUCCEEDED
    assert [(n.retries, n.stdout.strip(), n.phase) for n in result.containers()] == [
        (0, "1", FAILED),
        (1, "2", FAILED),
        (2, "3", SUCCEEDED),
    ]


def test_the_exit_handler_hears_the_status_and_the_failures(tmp_path: Path) -> None:
    report = _container(
        "report",
        """
        import json, sys
        open("exit.json", "w").write(json.dumps(sys.argv[1:]))
        """,
    )
    report["container"]["args"] = ["{{workflow.status}}", "{{workflow.failures}}"]
    main = _dag("main", {"name": "a", "template": "bad"})
    result = play(_workflow([main, BAD, report], onExit="report"), cwd=tmp_path)
    assert result.phase == FAILED, result.trace()
    assert [node.name for node in result.exit_handler()] == ["harness-harness.onExit"]
    status, failures = json.loads((tmp_path / "exit.json").read_text())
    assert status == FAILED
    failed = json.loads(json.loads(failures))  # quoted once more, as Argo writes it
    assert [(f["displayName"], f["templateName"], f["phase"], f["message"]) for f in failed] == [
        ("a", "bad", FAILED, "Error (exit code 3)"),
        ("harness-harness", "main", FAILED, ""),
    ]


def test_sprig_trunc_cuts_bytes_as_argo_does() -> None:
    scope = {"workflow.failures": "é" * 3}
    text = evaluate_expression("sprig.trunc(3, workflow.failures)", scope, "test")
    assert text == "é\ufffd"  # a character cut in two is replaced


@pytest.mark.parametrize("over", [False, True])
def test_a_container_starts_only_with_its_strings_under_linux_limit(
    tmp_path: Path, over: bool
) -> None:
    long = _container("long", "open('ran', 'w').write('yes')")
    # The template, argument included, also travels in one variable (ARGO_TEMPLATE).
    long["container"]["args"] = ["x" * (ARGUMENT_LIMIT if over else ARGUMENT_LIMIT - 1000)]
    result = play(_workflow([_dag("main", {"name": "a", "template": "long"}), long]), cwd=tmp_path)
    (node,) = result.containers()
    if over:
        assert (node.phase, node.message, node.stderr) == (
            FAILED, "Error (exit code 1)", TOO_LONG + "\n"
        )  # fmt: skip
        assert not (tmp_path / "ran").exists()
        # The limit is Linux's own: the same argument, given to a process here.
        with pytest.raises(OSError, match="Argument list too long"):
            subprocess.run(["true", "x" * ARGUMENT_LIMIT], check=False)
    else:
        assert node.phase == SUCCEEDED and (tmp_path / "ran").exists(), result.trace()


SLEEPER = _container(
    "sleeper",
    """
    import pathlib, time
    marker = pathlib.Path("started")
    first = not marker.exists()
    marker.write_text("yes")
    time.sleep(60 if first else 0)
    """,
)


@pytest.mark.parametrize("action", [STOP, TERMINATE, DEADLINE])
def test_a_stop_shuts_the_workflow_down(tmp_path: Path, action: str) -> None:
    main = _dag(
        "main",
        {"name": "a", "template": "sleeper"},
        {"name": "b", "template": "ok", "depends": "a.Failed"},
    )
    interruption = Interruption(action, "sleeper", when=(tmp_path / "started").exists)
    workflow = _workflow([main, SLEEPER, OK, {**OK, "name": "exit"}], onExit="exit")
    result = play(workflow, cwd=tmp_path, interruptions=[interruption])
    assert (result.phase, result.message) == (FAILED, INTERRUPTION_MESSAGES[action])
    # The stopped container got SIGTERM; nothing started after it, not even b on a.Failed.
    stopped = result.containers()[0]
    assert (stopped.template, stopped.returncode, stopped.phase) == (
        "sleeper", -signal.SIGTERM, FAILED
    )  # fmt: skip
    assert "harness-harness.b" not in result.phases()
    assert len(result.exit_handler()) == (0 if action == TERMINATE else 1)


def test_the_workflow_deadline_passes_in_real_time(tmp_path: Path) -> None:
    main = _dag("main", {"name": "a", "template": "sleeper"})
    result = play(_workflow([main, SLEEPER], activeDeadlineSeconds=1), cwd=tmp_path)
    assert (result.phase, result.interrupted) == (FAILED, [DEADLINE]), result.trace()
    assert result.containers()[0].message == "Step exceeded its deadline"


@pytest.mark.parametrize(
    ("policy", "phases"), [("Always", [ERROR, SUCCEEDED]), ("OnFailure", [ERROR])]
)
def test_a_deleted_pod_is_an_error_retried_under_always(
    tmp_path: Path, policy: str, phases: list[str]
) -> None:
    sleeper = {**SLEEPER, "retryStrategy": {"limit": "1", "retryPolicy": policy}}
    main = _dag(
        "main",
        {"name": "a", "template": "sleeper"},
        {"name": "b", "template": "ok", "depends": "a.Errored"},
    )
    interruption = Interruption(DELETE, "sleeper", when=(tmp_path / "started").exists)
    result = play(_workflow([main, sleeper, OK]), cwd=tmp_path, interruptions=[interruption])
    assert [n.phase for n in result.containers("sleeper")] == phases, result.trace()
    assert result.containers("sleeper")[0].returncode == -signal.SIGKILL
    # An Errored task takes the routes on .Errored.
    assert (result.phases()["harness-harness.b"] == SUCCEEDED) is (phases[-1] == ERROR)


def test_secrets_come_from_secret_key_refs(tmp_path: Path) -> None:
    reader = _container("reader", "import os; assert os.environ['PASSWORD'] == 's3cr3t'")
    reference = {"secretKeyRef": {"name": "database", "key": "password"}}
    reader["container"]["env"] = [{"name": "PASSWORD", "valueFrom": reference}]
    workflow = _workflow([_dag("main", {"name": "r", "template": "reader"}), reader])
    result = play(workflow, cwd=tmp_path, secrets={("database", "password"): "s3cr3t"})
    assert result.phase == SUCCEEDED, result.trace()
    with pytest.raises(HarnessError, match="no secret 'database'"):
        play(workflow, cwd=tmp_path)


def test_an_unresolved_reference_is_an_error(tmp_path: Path) -> None:
    echo = _container("echo", "pass")
    echo["container"]["env"] = [{"name": "X", "value": "{{inputs.parameters.missing}}"}]
    with pytest.raises(HarnessError, match="cannot resolve"):
        play(_workflow([_dag("main", {"name": "e", "template": "echo"}), echo]), cwd=tmp_path)
    with pytest.raises(HarnessError, match="declares no parameter"):
        play(_workflow([_dag("main"), echo]), cwd=tmp_path, arguments={"nope": "1"})


# ============================================================================ pipelines on "Argo"

#: what differs between any two runs: set aside when comparing run logs
VOLATILE_KEYS = {"start_time", "end_time", "duration", "code_identities"}
MASK = "<run-id>"
#: the image of ``argo.yaml``; local runs are runs in it (``MAGNUS_IMAGE``), so fingerprints match
IMAGE = "registry.example.com/magnus:harness"


@dataclass
class Stage:
    """A project whose run log store and catalog are on the moto server.

    ``argo.yaml`` renders for Argo, ``local.yaml`` runs locally: same stores, same bucket.
    """

    root: Path
    bucket: str
    endpoint: str
    check_workflow: Callable[[dict[str, Any]], None]

    def render(
        self,
        pipeline: str,
        parameters_file: str = "",
        reuse: bool | None = None,
        config: str = "argo.yaml",
    ) -> dict[str, Any]:
        """The workflow ``magnus execute -f pipeline -c config [--reuse]`` writes, checked."""
        from magnus_executor_argo.render import render_document

        from magnus.entrypoints import check_compatibility

        prepared = prepare_run(pipeline, config, parameters_file, reuse=reuse)
        check_compatibility(prepared)  # as `magnus execute` does: S3 needs no volume
        document = render_document(prepared.executor, prepared.context)
        self.check_workflow(document)
        return document

    def play(self, document: dict[str, Any], **kwargs: Any) -> Result:
        """Play a rendered workflow in the project."""
        return play(document, cwd=self.root, **kwargs)

    def run_locally(
        self,
        pipeline: str,
        run_id: str,
        parameters_file: str = "",
        env: dict[str, str] | None = None,
    ) -> int:
        """``magnus execute`` with the local executor, in the workflow's image (as far as
        fingerprints tell); returns the exit status."""
        extra = ["-p", parameters_file] if parameters_file else []
        done = run_magnus(
            "execute",
            "-f",
            pipeline,
            "-c",
            "local.yaml",
            *extra,
            "--run-id",
            run_id,
            cwd=self.root,
            env={IMAGE_ENV: IMAGE, **(env or {})},
        )
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return done.returncode

    def show(self, run_id: str) -> dict[str, Any]:
        """The run log, as ``magnus runs show --json`` prints it (in this process: faster)."""
        from click.testing import CliRunner

        from magnus.cli import cli

        shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--json", "-c", "local.yaml"])
        assert shown.exit_code == 0, shown.output
        return json.loads(shown.stdout)

    def normalised(self, log: dict[str, Any]) -> dict[str, Any]:
        """``log`` without what differs between two runs of the same pipeline."""
        run_id = log["run_id"]
        log = copy.deepcopy(log)
        client = s3_client(self.endpoint)
        for step in _step_logs(log["steps"]):
            for entry in step.get("data_catalog", []):
                if ".execution.log" in entry["name"]:
                    key = f"catalog/{entry['catalog_relative_path']}"
                    body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    masked = body.replace(run_id.encode(), MASK.encode())
                    entry["data_hash"] = hashlib.sha256(masked).hexdigest()
        config = log["run_config"]
        config.pop("executor")
        config.pop("configuration_file")
        config.pop("owner", None)  # recorded by a run traversed in one process only
        return _without(json.loads(json.dumps(log).replace(run_id, MASK)), VOLATILE_KEYS)


def _step_logs(steps: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in steps.values():
        yield step
        for branch in step.get("branches", {}).values():
            yield from _step_logs(branch.get("steps", {}))


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(item, keys) for item in value]
    return value


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, one line each (for assertion messages)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in list(left) + [k for k in right if k not in left]:
            if key not in left or key not in right:
                found.append(f"{path}/{key}: only in {'argo' if key in left else 'local'}")
            else:
                found += differences(left[key], right[key], f"{path}/{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [
            d
            for i, (a, b) in enumerate(zip(left, right, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if left == right else [f"{path}: argo {left!r} != local {right!r}"]


def assert_same_run(stage: Stage, argo_run: str, local_run: str) -> dict[str, Any]:
    """The two run logs are the same, modulo what must differ; returns the argo run's log."""
    argo, local = stage.show(argo_run), stage.show(local_run)
    found = differences(stage.normalised(argo), stage.normalised(local))
    assert not found, "the run logs differ:\n" + "\n".join(found[:40])
    return argo


def _config(executor: dict[str, Any], bucket: str, endpoint: str) -> dict[str, Any]:
    connection = {"bucket": bucket, "endpoint_url": endpoint, "region": REGION, "max_attempts": 2}
    return {
        "executor": executor,
        "run_log_store": {"type": "chunked-s3", "config": {**connection, "prefix": "run-logs"}},
        "catalog": {"type": "s3", "config": {**connection, "prefix": "catalog"}},
    }


@pytest.fixture
def stage(
    project: Path,
    s3_server: str,
    s3_bucket: str,
    check_workflow: Callable[[dict[str, Any]], None],
) -> Stage:
    """The project with ``argo.yaml`` and ``local.yaml`` on the moto server's bucket."""
    argo = {"type": "argo", "config": {"image": IMAGE}}
    for name, executor in (("argo.yaml", argo), ("local.yaml", {"type": "local"})):
        config = _config(executor, s3_bucket, s3_server)
        (project / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return Stage(project, s3_bucket, s3_server, check_workflow)


def _write(stage: Stage, name: str, text: str) -> str:
    (stage.root / name).write_text(textwrap.dedent(text))
    return name


def _played(stage: Stage, document: dict[str, Any], phase: str, **kwargs: Any) -> Result:
    result = stage.play(document, **kwargs)
    assert result.phase == phase, result.trace()
    return result


def _templates_run(result: Result) -> list[str]:
    """The templates of the containers that ran, the exit handler's left out."""
    return [node.template for node in result.containers() if node not in result.exit_handler()]


# ---------------------------------------------------------------------------- linear


@pytest.mark.e2e
def test_a_linear_pipeline_runs_as_locally(stage: Stage) -> None:
    document = stage.render("examples/python-tasks.yaml", "examples/parameters.yaml")
    write_run_hooks(stage.root)
    result = _played(stage, document, SUCCEEDED, env={"MAGNUS_PLUGINS": "run_hooks"})
    # The success step runs in the container of the step before it: no pod of its own.
    assert _templates_run(result) == ["prepare", "train", "report"]
    # Observers see the run start in its first container and end in its last one.
    assert run_hooks_seen(stage.root) == [
        {"hook": "before_run", "status": "PROCESSING", "steps": []},
        {
            "hook": "after_run",
            "status": "SUCCESS",
            "steps": ["prepare", "report", "success", "train"],
        },
    ]
    # The exit handler ran, and left the ended run alone: after_run was heard once.
    assert [node.phase for node in result.exit_handler()] == [SUCCEEDED]
    # The run id is the workflow's uid, as in a cluster.
    assert result.parameters["run_id"] == result.uid
    assert (
        stage.run_locally("examples/python-tasks.yaml", "local-linear", "examples/parameters.yaml")
        == 0
    )
    log = assert_same_run(stage, result.uid, "local-linear")
    assert log["run_config"]["executor"]["service_name"] == "argo"  # the containers' own
    assert log["status"] == "SUCCESS"
    assert list(log["steps"]) == ["prepare", "train", "report", "success"]
    assert log["parameters"]["rows"] == 5 and log["parameters"]["score"] == 1.5


@pytest.mark.e2e
def test_parameters_given_at_submit_time_reach_the_run_log(stage: Stage) -> None:
    document = stage.render("examples/python-tasks.yaml", "examples/parameters.yaml")
    exposed = {p["name"]: p["value"] for p in document["spec"]["arguments"]["parameters"]}
    assert exposed == {"run_id": "{{workflow.uid}}", "model": "small", "rows": "5"}
    _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-rows", "rows": "7"})
    env = {"MAGNUS_PRM_rows": "7"}
    assert (
        stage.run_locally(
            "examples/python-tasks.yaml", "local-rows", "examples/parameters.yaml", env
        )
        == 0
    )
    log = assert_same_run(stage, "argo-rows", "local-rows")
    assert log["run_config"]["initial_parameters"]["rows"] == 7
    assert log["parameters"]["rows"] == 7 and log["parameters"]["score"] == 2.1


# ---------------------------------------------------------------------------- parallel and dag


@pytest.mark.e2e
def test_parallel_branches_and_a_nested_dag_run_as_locally(stage: Stage) -> None:
    document = stage.render("examples/parallel.yaml", "examples/parameters.yaml")
    _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-parallel"})
    assert (
        stage.run_locally("examples/parallel.yaml", "local-parallel", "examples/parameters.yaml")
        == 0
    )
    log = assert_same_run(stage, "argo-parallel", "local-parallel")
    assert log["status"] == "SUCCESS"
    assert set(log["steps"]["train"]["branches"]) == {"train.small", "train.large"}
    assert list(log["steps"]["report"]["branches"]) == ["report.dag"]
    assert log["parameters"]["small_score"] == 5 and log["parameters"]["large_score"] == 5


# ---------------------------------------------------------------------------- maps


NESTED = """\
dag:
  start_at: make lists
  steps:
    make lists:
      type: task
      command_type: shell
      command: |
        export MAGNUS_PRM_chunks='[1, 2]'
        export MAGNUS_PRM_items='["amber", "blue sky"]'
      next: outer
    outer:
      type: map
      iterate_on: chunks
      iterate_as: chunk
      next: total
      branch:
        start_at: split
        steps:
          split:
            type: parallel
            next: success
            branches:
              left:
                start_at: inner
                steps:
                  inner:
                    type: map
                    iterate_on: items
                    iterate_as: item
                    next: success
                    branch:
                      start_at: leaf
                      steps:
                        leaf:
                          type: task
                          command_type: shell
                          command: |
                            echo "leaf of $MAGNUS_MAP_VARIABLE"
                            export MAGNUS_PRM_pair="$MAGNUS_MAP_VARIABLE"
                          next: success
                        success: {type: success}
                        fail: {type: fail}
                  success: {type: success}
                  fail: {type: fail}
              right:
                start_at: note
                steps:
                  note: {type: stub, next: success}
                  success: {type: success}
                  fail: {type: fail}
          success: {type: success}
          fail: {type: fail}
    total:
      type: task
      command_type: shell
      command: echo "pairs $MAGNUS_PRM_pair"
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
def test_a_map_in_a_parallel_in_a_map_runs_as_locally(stage: Stage) -> None:
    pipeline = _write(stage, "nested.yaml", NESTED)
    document = stage.render(pipeline)
    # The elements are made by a step while the run goes: Argo only ever sees indices.
    assert "amber" not in json.dumps(document)
    result = _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-nested"})
    fan_outs = [n.outputs["iterate-on"] for n in result.containers() if "iterate-on" in n.outputs]
    assert fan_outs == ["[0, 1]"] * 3  # the outer map's, then each inner map's
    inside = [n for n in result.containers() if "--map-variable" in n.command]
    assert len(inside) == 14  # one-step branches and success steps cost no pod of their own
    for node in inside:
        indices = json.loads(node.command[node.command.index("--map-variable") + 1])
        assert all(isinstance(index, int) for index in indices.values()), node.command
        assert node.env["MAGNUS_MAP_INDICES"] == "1"
    assert stage.run_locally(pipeline, "local-nested") == 0
    log = assert_same_run(stage, "argo-nested", "local-nested")
    outer = log["steps"]["outer"]["branches"]
    assert list(outer) == ["outer.1", "outer.2"]
    left = outer["outer.2"]["steps"]["outer.2.split"]["branches"]["outer.2.split.left"]
    inner = left["steps"]["outer.2.split.left.inner"]["branches"]
    assert [b["map_variable"] for b in inner.values()] == [{"item": "amber"}, {"item": "blue sky"}]
    assert log["parameters"]["pair"] == [
        [{"chunk": c, "item": i} for i in ("amber", "blue sky")] for c in (1, 2)
    ]


# ---------------------------------------------------------------------------- failures


@pytest.mark.e2e
def test_on_failure_and_a_retried_step_run_as_locally(stage: Stage) -> None:
    document = stage.render("examples/on-failure.yaml")
    result = _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-on-failure"})
    flaky = result.containers("flaky-step")
    assert [(n.retries, n.env["MAGNUS_STEP_ATTEMPT"], n.phase) for n in flaky] == [
        (0, "1", FAILED),
        (1, "2", SUCCEEDED),
    ]
    assert _templates_run(result) == ["flaky-step", "flaky-step", "risky-step", "recover"]
    assert stage.run_locally("examples/on-failure.yaml", "local-on-failure") == 0
    log = assert_same_run(stage, "argo-on-failure", "local-on-failure")
    assert log["status"] == "SUCCESS"
    assert list(log["steps"]) == ["flaky step", "risky step", "recover", "success"]
    attempts = log["steps"]["flaky step"]["attempts"]
    assert [(a["attempt_number"], a["status"]) for a in attempts] == [(1, "FAIL"), (2, "SUCCESS")]


FAILING = """\
dag:
  start_at: first
  steps:
    first:
      type: task
      command_type: shell
      command: echo starting
      next: broken
    broken:
      type: task
      command_type: shell
      command: echo "about to fail" && exit 1
      max_attempts: {attempts}
      next: never
    never:
      type: stub
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
@pytest.mark.parametrize("attempts", [1, 2])
def test_a_failing_run_ends_in_its_fail_step_as_locally(stage: Stage, attempts: int) -> None:
    pipeline = _write(stage, "failing.yaml", FAILING.format(attempts=attempts))
    document = stage.render(pipeline)
    result = _played(stage, document, FAILED, arguments={"run_id": "argo-failing"})
    assert _templates_run(result) == ["first"] + ["broken"] * attempts
    assert result.phases()[f"{document['metadata']['generateName']}harness.never"] == OMITTED
    assert stage.run_locally(pipeline, "local-failing") == 1
    log = assert_same_run(stage, "argo-failing", "local-failing")
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["first", "broken", "fail"]  # the fail step ran once
    assert len(log["steps"]["broken"]["attempts"]) == attempts


FAILING_BRANCH = """\
dag:
  start_at: each
  steps:
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: check
        steps:
          check:
            type: task
            command_type: shell
            command: case "$MAGNUS_MAP_VARIABLE" in *bad*) exit 1;; esac
            next: success
          success: {type: success}
          fail: {type: fail}
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
def test_a_failing_branch_fails_the_run_through_the_fan_in(stage: Stage) -> None:
    pipeline = _write(stage, "branch.yaml", FAILING_BRANCH)
    parameters = _write(stage, "items.yaml", "items: [good, bad]\n")
    document = stage.render(pipeline, parameters)
    write_run_hooks(stage.root)
    result = _played(
        stage, document, FAILED, arguments={"run_id": "argo-branch"},
        env={"MAGNUS_PLUGINS": "run_hooks"},
    )  # fmt: skip
    assert _templates_run(result)[-1] == "each-fan-in"
    # The branch's fail step does not end the run; the pipeline's, run by the fan-in, does.
    assert run_hooks_seen(stage.root) == [
        {"hook": "before_run", "status": "PROCESSING", "steps": []},
        {"hook": "after_run", "status": "FAIL", "steps": ["each", "fail"]},
    ]
    assert stage.run_locally(pipeline, "local-branch", parameters) == 1
    log = assert_same_run(stage, "argo-branch", "local-branch")
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["each", "fail"]
    branches = log["steps"]["each"]["branches"]
    assert {name: b["status"] for name, b in branches.items()} == {
        "each.good": "SUCCESS",
        "each.bad": "FAIL",
    }


RETRIED = """\
dag:
  start_at: each
  steps:
    each:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: flaky
        steps:
          flaky:
            type: task
            command_type: shell
            command: |
              item=$(printf '%s' "$MAGNUS_MAP_VARIABLE" | sed 's/.*"item": "\\([a-z]*\\)".*/\\1/')
              marker="data/tries-$MAGNUS_RUN_ID-$item"
              mkdir -p data
              tries=$(cat "$marker" 2>/dev/null || echo 0)
              echo $((tries + 1)) > "$marker"
              echo "attempt $((tries + 1)) of $item"
              if [ "$item" = "slow" ] && [ "$tries" -lt 2 ]; then exit 4; fi
              export MAGNUS_PRM_seen="$item"
            max_attempts: 3
            next: success
          success: {type: success}
          fail: {type: fail}
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
def test_a_retried_flaky_step_in_a_map_is_recorded_once_per_attempt(stage: Stage) -> None:
    pipeline = _write(stage, "retried.yaml", RETRIED)
    parameters = _write(stage, "items.yaml", "items: [quick, slow]\n")
    document = stage.render(pipeline, parameters)
    result = _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-retried"})
    flaky = result.containers("each-map-flaky")
    assert [(n.retries, n.env["MAGNUS_STEP_ATTEMPT"], n.phase) for n in flaky] == [
        (0, "1", SUCCEEDED),
        (0, "1", FAILED),
        (1, "2", FAILED),
        (2, "3", SUCCEEDED),
    ]
    assert stage.run_locally(pipeline, "local-retried", parameters) == 0
    log = assert_same_run(stage, "argo-retried", "local-retried")
    step = log["steps"]["each"]["branches"]["each.slow"]["steps"]["each.slow.flaky"]
    assert [(a["attempt_number"], a["status"]) for a in step["attempts"]] == [
        (1, "FAIL"),
        (2, "FAIL"),
        (3, "SUCCESS"),
    ]
    assert [e["name"] for e in step["data_catalog"]] == [
        "flaky.execution.log_slow",
        "flaky.attempt-2.execution.log_slow",
        "flaky.attempt-3.execution.log_slow",
    ]
    assert log["parameters"]["seen"] == ["quick", "slow"]


RETRIED_GET = """\
dag:
  start_at: write
  steps:
    write:
      type: task
      command_type: shell
      command: mkdir -p data && echo "shared input" > data/input.txt
      catalog:
        put: [data/input.txt]
      next: flaky
    flaky:
      type: task
      command_type: shell
      command: |
        marker="data/tries-$MAGNUS_RUN_ID"
        tries=$(cat "$marker" 2>/dev/null || echo 0)
        echo $((tries + 1)) > "$marker"
        cat data/input.txt
        test "$tries" -ge 1
      max_attempts: 2
      catalog:
        get: [data/input.txt]
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
def test_a_retried_step_records_its_catalog_get_once(stage: Stage) -> None:
    pipeline = _write(stage, "retried-get.yaml", RETRIED_GET)
    document = stage.render(pipeline)
    result = _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-get"})
    assert _templates_run(result) == ["write", "flaky", "flaky"]
    assert stage.run_locally(pipeline, "local-get") == 0
    log = assert_same_run(stage, "argo-get", "local-get")
    stages = [(e["name"], e["stage"]) for e in log["steps"]["flaky"]["data_catalog"]]
    assert stages == [
        ("data/input.txt", "get"),
        ("flaky.execution.log", "put"),
        ("flaky.attempt-2.execution.log", "put"),
    ]


MISSING_DATA = """\
dag:
  start_at: needs data
  steps:
    needs data:
      type: task
      command_type: shell
      command: cat data/missing.txt
      max_attempts: 2
      catalog:
        get: [data/missing.txt]
      next: success
    success:
      type: success
    fail:
      type: fail
"""


@pytest.mark.e2e
def test_a_failed_catalog_get_is_attempted_as_often_as_locally(stage: Stage) -> None:
    pipeline = _write(stage, "missing.yaml", MISSING_DATA)
    document = stage.render(pipeline)
    _played(stage, document, FAILED, arguments={"run_id": "argo-missing"})
    assert stage.run_locally(pipeline, "local-missing") == 1
    log = assert_same_run(stage, "argo-missing", "local-missing")
    assert log["status"] == "FAIL"
    assert list(log["steps"]) == ["needs data", "fail"]


# ---------------------------------------------------------------------------- reuse by fingerprint


def _fingerprint(step: dict[str, Any]) -> dict[str, str]:
    return step["attempts"][-1]["fingerprint"]  # type: ignore[no-any-return]


@pytest.mark.e2e
def test_reuse_finds_a_local_runs_steps_in_the_same_image_only(stage: Stage) -> None:
    pipeline, parameters = "examples/python-tasks.yaml", "examples/parameters.yaml"
    assert stage.run_locally(pipeline, "local-reuse", parameters) == 0
    # Reuse is asked where the workflow is rendered; every container looks up the store.
    document = stage.render(pipeline, parameters, reuse=True)
    _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-reuse"})
    log = stage.show("argo-reuse")
    assert log["run_config"]["reuse"] is True
    tasks = ["prepare", "train", "report"]
    reused = {name: log["steps"][name].get("reused_from") for name in tasks}
    assert reused == dict.fromkeys(tasks, "local-reuse")
    assert log["parameters"]["score"] == 1.5

    # train in another image: it runs (its fingerprint differs by the image alone); the steps
    # around it are still taken from runs in their own image.
    definition = yaml.safe_load((stage.root / pipeline).read_text())
    definition["dag"]["steps"]["train"]["overrides"] = {"argo": "other"}
    _write(stage, "other.yaml", yaml.safe_dump(definition))
    config = yaml.safe_load((stage.root / "argo.yaml").read_text())
    config["executor"]["config"]["overrides"] = {"other": {"image": f"{IMAGE}-other"}}
    _write(stage, "argo-other.yaml", yaml.safe_dump(config))
    document = stage.render("other.yaml", parameters, reuse=True, config="argo-other.yaml")
    _played(stage, document, SUCCEEDED, arguments={"run_id": "argo-other"})
    steps = stage.show("argo-other")["steps"]
    assert "reused_from" not in steps["train"] and steps["train"]["status"] == "SUCCESS"
    before, after = _fingerprint(log["steps"]["train"]), _fingerprint(steps["train"])
    assert [part for part in FINGERPRINT_PARTS if before[part] != after[part]] == ["environment"]
    assert steps["prepare"].get("reused_from") and steps["report"].get("reused_from")
