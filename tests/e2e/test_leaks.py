"""No channel leaks a secret: every byte a run writes is searched for it.

One pipeline exercises every channel at once -- what a python task prints (text, binary,
``os.system``, ``subprocess``), a shell task, a notebook and its kernel, an error message, a metric,
returned parameters (whole secrets and texts holding one) read by later steps -- and a branch
step that finds the secret in its environment without serving it. It runs with the secret from a
dotenv file and from a real Vault (OpenBao), under the local executor in one process
(sequential) and with every branch in a process of its own (``enable_parallel``), with the MLflow
tracker on a real server; and rendered for Argo, then played container by container.

After each run, the run-log store, the catalog, the project, the console (stdout and stderr)
and the MLflow server's store are searched for the secret: it must appear nowhere. The masked
placeholder must appear where the secret was printed, which proves each channel was exercised;
and the steps that compare the parameters they got with the secret itself succeed, which proves
nothing was altered on the way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_harness import play
from fixtures.mlflow_server import MlflowServer, runs_by_name
from helpers import show_run

pytestmark = pytest.mark.e2e

MASK = "********"

STEPS = """
import os
import subprocess
import sys

import magnus

NAME = {name!r}


def serve():
    token = magnus.get_secret(NAME)
    print(f"print {{token}}")
    print(f"stderr {{token}}", file=sys.stderr)
    sys.stdout.buffer.write(f"binary {{token}}\\n".encode())
    os.environ["LEAK_TOKEN"] = token  # every process started from here on inherits it
    os.system("echo os.system $LEAK_TOKEN")
    subprocess.run(["sh", "-c", "echo subprocess $LEAK_TOKEN >&2"], check=True)
    magnus.track_this(token=token)


def give():
    token = magnus.get_secret(NAME)
    return {{"token": token, "bearer": f"Bearer {{token}}"}}


def inherit():
    # This process did not serve the secret: it only finds it in its environment.
    value = os.environ["LEAK_TOKEN"]
    print(f"inherited {{value}}")
    os.system("echo inherited os.system $LEAK_TOKEN")
    return {{"from_env": value}}


def check(token: str, bearer: str, from_env: str):
    real = magnus.get_secret(NAME)
    if (token, bearer, from_env) != (real, f"Bearer {{real}}", real):
        raise RuntimeError("a secret parameter arrived altered")
    print(f"check got {{token}}")


def check_notebook(from_notebook: str):
    if from_notebook != magnus.get_secret(NAME):
        raise RuntimeError("the notebook's output parameter arrived altered")


def explode(token: str):
    raise ValueError(f"cannot use {{token}}")
"""

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "parameters",
            "metadata": {"tags": ["parameters"]},
            "outputs": [],
            "source": ["token = ''"],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "prints",
            "metadata": {},
            "outputs": [],
            "source": [
                "import os\n",
                "print('notebook', token)\n",
                "os.system('echo kernel os.system $LEAK_TOKEN')\n",
                "token",
            ],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "output",
            "metadata": {"tags": ["magnus_output"]},
            "outputs": [],
            "source": ["{'from_notebook': token}"],
        },
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _branch(start: dict[str, Any]) -> dict[str, Any]:
    name, step = next(iter(start.items()))
    return {
        "start_at": name,
        "steps": {
            name: {**step, "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }


def pipeline(with_error: bool) -> dict[str, Any]:
    """The pipeline; ``with_error`` adds a step whose error message holds the secret."""
    steps: dict[str, Any] = {
        "serve": {"type": "task", "command": "steps.serve", "next": "fan"},
        "fan": {
            "type": "parallel",
            "next": "give",
            "branches": {
                "a": _branch({"inherit": {"type": "task", "command": "steps.inherit"}}),
                "b": _branch(
                    {
                        "shell": {
                            "type": "task",
                            "command_type": "shell",
                            "command": "echo shell env $LEAK_TOKEN",
                        }
                    }
                ),
            },
        },
        # The branches ran before any parameter held the secret: their processes mask it
        # because the run log says it was served, not because they read it themselves.
        "give": {"type": "task", "command": "steps.give", "next": "show"},
        "show": {
            "type": "task",
            "command_type": "shell",
            "command": "echo shell parameter $MAGNUS_PRM_token",
            "next": "check",
        },
        "check": {"type": "task", "command": "steps.check", "next": "notebook"},
        "notebook": {
            "type": "task",
            "command_type": "notebook",
            "command": "leak.ipynb",
            "next": "check notebook",
        },
        "check notebook": {"type": "task", "command": "steps.check_notebook", "next": "success"},
        "success": {"type": "success"},
        "fail": {"type": "fail"},
    }
    if with_error:
        steps["check notebook"]["next"] = "explode"
        steps["explode"] = {
            "type": "task",
            "command": "steps.explode",
            "on_failure": "success",
            "next": "fail",
        }
    return {"dag": {"start_at": "serve", "steps": steps}}


@dataclass
class Provider:
    """Where the secret comes from: its configuration block, name and the run's environment."""

    secrets: dict[str, Any]
    name: str
    value: str
    env: dict[str, str] = field(default_factory=dict)
    #: other values that must not leak either (a Vault token)
    also_secret: list[str] = field(default_factory=list)


@pytest.fixture(params=["dotenv", "vault"])
def provider(request: pytest.FixtureRequest, project: Path) -> Provider:
    value = f"tok-{uuid.uuid4().hex}"
    if request.param == "dotenv":
        (project / ".env").write_text(f'API_TOKEN="{value}"\n')
        return Provider({"type": "dotenv", "config": {"location": ".env"}}, "API_TOKEN", value)
    server = request.getfixturevalue("vault_server")
    path = f"leaks-{uuid.uuid4().hex[:12]}/project"
    server.client().secrets.kv.v2.create_or_update_secret(path=path, secret={"api_token": value})
    config = {
        "url": server.url,
        "mount_point": "secret",
        "path": path,
        "kv_version": 2,
        "auth": {"method": "token", "token_env": "VAULT_TOKEN"},
    }
    return Provider(
        {"type": "vault", "config": config},
        "api_token",
        value,
        env={"VAULT_TOKEN": server.root_token},
        also_secret=[server.root_token],
    )


@pytest.fixture
def leaky_project(project: Path, provider: Provider) -> Path:
    (project / "steps.py").write_text(STEPS.format(name=provider.name))
    (project / "leak.ipynb").write_text(json.dumps(NOTEBOOK))
    return project


def files_holding(folders: list[Path], text: str) -> list[str]:
    """Every file under ``folders`` whose bytes contain ``text`` (the dotenv file excepted)."""
    needle = text.encode()
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path.name != ".env" and needle in path.read_bytes():
                found.append(str(path))
    return found


def assert_secret_nowhere(provider: Provider, folders: list[Path], *outputs: str) -> None:
    for secret in (provider.value, *provider.also_secret):
        assert files_holding(folders, secret) == []
        for output in outputs:
            assert secret not in output


def assert_channels_masked(catalog: Path, log: dict[str, Any], name: str) -> None:
    """Each channel shows the placeholder where the secret was printed; data arrived intact."""
    execution_logs = {
        path.name: path.read_text() for path in catalog.iterdir() if ".execution.log" in path.name
    }
    serve = execution_logs["serve.execution.log"]
    for line in ("print", "stderr", "binary", "os.system", "subprocess"):
        assert f"{line} {MASK}" in serve, serve
    inherit = execution_logs["inherit.execution.log"]
    assert f"inherited {MASK}" in inherit and f"inherited os.system {MASK}" in inherit
    assert f"shell env {MASK}" in execution_logs["shell.execution.log"]
    assert f'shell parameter "{MASK}"' in execution_logs["show.execution.log"]
    assert f"notebook {MASK}" in execution_logs["notebook.execution.log"]
    # the executed notebook: the injected parameter and every output masked
    assert MASK in (catalog / "leak_out.ipynb").read_text()

    reference = {"__magnus_secret__": name}
    assert log["parameters"]["token"] == reference
    assert log["parameters"]["bearer"] == {"__magnus_secret__": ["Bearer ", name, ""]}
    assert log["parameters"]["from_env"] == reference
    assert log["parameters"]["from_notebook"] == reference
    assert log["run_config"]["secrets_served"] == [name]
    # these steps compare what they got with the secret itself: nothing arrived altered
    assert log["steps"]["check"]["status"] == "SUCCESS"
    assert log["steps"]["check notebook"]["status"] == "SUCCESS"


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "enable_parallel"])
def test_no_secret_leaks_from_a_local_run(
    leaky_project: Path,
    provider: Provider,
    parallel: bool,
    run_magnus: Callable[..., Any],
    mlflow_server: MlflowServer,
    mlflow_client: Any,
    mlflow_experiment: str,
) -> None:
    project = leaky_project
    (project / "p.yaml").write_text(yaml.safe_dump(pipeline(with_error=True)))
    config = {
        "secrets": provider.secrets,
        "executor": {"type": "local", "config": {"enable_parallel": parallel}},
        "experiment_tracker": {
            "type": "mlflow",
            "config": {"tracking_uri": mlflow_server.url, "experiment_name": mlflow_experiment},
        },
    }
    (project / "c.yaml").write_text(yaml.safe_dump(config))

    result = run_magnus(
        "execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "leaks", cwd=project,
        env=provider.env,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert_secret_nowhere(provider, [project, mlflow_server.folder], result.stdout, result.stderr)
    for printed in ("print", "binary", "os.system", "inherited", "shell env", "check got"):
        assert f"{printed} {MASK}" in result.stdout, result.stdout
    for printed in ("stderr", "subprocess"):
        assert f"{printed} {MASK}" in result.stderr, result.stderr
    log = show_run("leaks", project, "-c", "c.yaml")
    assert_channels_masked(project / ".catalog" / "leaks", log, provider.name)
    explode = log["steps"]["explode"]
    assert explode["attempts"][0]["message"] == f"ValueError: cannot use {MASK}"
    assert log["steps"]["serve"]["user_defined_metrics"] == {"token": MASK}
    # the MLflow tracker was told about the error, masked
    runs = runs_by_name(mlflow_client, mlflow_experiment)
    assert runs["explode"].data.tags["magnus.error"] == f"ValueError: cannot use {MASK}"


def test_no_secret_leaks_from_an_argo_workflow(
    leaky_project: Path,
    provider: Provider,
    run_magnus: Callable[..., Any],
) -> None:
    project = leaky_project
    (project / "p.yaml").write_text(yaml.safe_dump(pipeline(with_error=False)))
    config = {
        "executor": {
            "type": "argo",
            "config": {
                "image": "img:1",
                "persistent_volumes": [{"name": "claim", "mount_path": str(project)}],
                "output_file": "workflow.yaml",
            },
        },
        "run_log_store": {"type": "chunked-fs", "config": {"log_folder": str(project / "logs")}},
        "catalog": {"type": "file-system", "config": {"catalog_location": str(project / "cat")}},
        "secrets": provider.secrets,
    }
    (project / "argo.yaml").write_text(yaml.safe_dump(config))
    rendered = run_magnus("execute", "-f", "p.yaml", "-c", "argo.yaml", cwd=project)
    assert rendered.returncode == 0, rendered.stderr
    workflow_text = (project / "workflow.yaml").read_text()

    # Every container finds the secret in its environment, as a pod given a Kubernetes secret;
    # the harness plays the workflow as Argo's controller would, one process per container.
    result = play(
        yaml.safe_load(workflow_text),
        cwd=project,
        env={**provider.env, "LEAK_TOKEN": provider.value},
    )

    assert result.phase == "Succeeded", result.trace()
    outputs = [text for node in result.containers() for text in (node.stdout, node.stderr)]
    assert_secret_nowhere(provider, [project], workflow_text, *outputs)
    printed = "".join(outputs)
    for line in ("print", "stderr", "binary", "os.system", "inherited", "shell env", "check got"):
        assert f"{line} {MASK}" in printed, printed
    (run_id,) = [p.name for p in (project / "logs").iterdir() if not p.name.startswith(".")]
    log = show_run(run_id, project, "-c", "argo.yaml")
    assert_channels_masked(project / "cat" / run_id, log, provider.name)


def test_a_secret_in_a_dict_key_fails_the_step_naming_the_parameter(
    project: Path, run_magnus: Callable[..., Any]
) -> None:
    # A reference can stand for a value, not for a key: the step fails rather than pass on an
    # altered parameter, and the key is recorded nowhere.
    value = f"tok-{uuid.uuid4().hex}"
    (project / ".env").write_text(f"API_TOKEN={value}\n")
    (project / "keys.py").write_text(
        "import magnus\n\n\ndef keyed():\n"
        "    return {'by_token': {magnus.get_secret('API_TOKEN'): 1}}\n"
    )
    (project / "p.yaml").write_text(
        yaml.safe_dump(
            {
                "dag": {
                    "start_at": "keyed",
                    "steps": {
                        "keyed": {"type": "task", "command": "keys.keyed", "next": "success"},
                        "success": {"type": "success"},
                        "fail": {"type": "fail"},
                    },
                }
            }
        )
    )
    (project / "c.yaml").write_text("secrets: {type: dotenv, config: {location: .env}}\n")
    result = run_magnus("execute", "-f", "p.yaml", "-c", "c.yaml", "--run-id", "keys", cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert value not in result.stdout + result.stderr
    assert files_holding([project / ".run_log_store", project / ".catalog"], value) == []
    log = show_run("keys", project, "-c", "c.yaml")
    message = log["steps"]["keyed"]["message"]
    assert "'by_token'" in message and "key" in message, message
    assert "by_token" not in log["parameters"]


def test_a_reference_the_provider_cannot_resolve_fails_the_step_naming_it(
    project: Path, run_magnus: Callable[..., Any]
) -> None:
    # A re-run resolves the references its original recorded; a secret gone since cannot be.
    (project / ".env").write_text("API_TOKEN=tok-still-there-0042\n")
    (project / "use.py").write_text("def use(token: str):\n    print(len(token))\n")
    (project / "p.yaml").write_text(
        "dag:\n  start_at: use\n  steps:\n"
        "    use: {type: task, command: use.use, next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    (project / "params.yaml").write_text("token: {__magnus_secret__: GONE}\n")
    (project / "c.yaml").write_text("secrets: {type: dotenv, config: {location: .env}}\n")
    result = run_magnus(
        "execute", "-f", "p.yaml", "-c", "c.yaml", "-p", "params.yaml", "--run-id", "gone",
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    log = show_run("gone", project, "-c", "c.yaml")
    message = log["steps"]["use"]["attempts"][0]["message"]
    assert "'token'" in message and "'GONE'" in message, message


def _one_step_output(
    project: Path, run_magnus: Callable[..., Any], name: str, source: str
) -> tuple[str, str]:
    """Run function ``name`` of module ``name`` (``source``) as a one-step pipeline.

    Returns what the console showed and the step's execution log.
    """
    (project / f"{name}.py").write_text(source)
    (project / "p.yaml").write_text(
        f"dag:\n  start_at: {name}\n  steps:\n"
        f"    {name}: {{type: task, command: {name}.{name}, next: success}}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    result = run_magnus("execute", "-f", "p.yaml", "--run-id", name, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (project / ".catalog" / name / f"{name}.execution.log").read_text()
    return result.stdout, log


def test_python_tasks_can_write_bytes_to_stdout(
    project: Path, run_magnus: Callable[..., Any]
) -> None:
    stdout, log = _one_step_output(
        project,
        run_magnus,
        "raw",
        "import sys\n\n\ndef raw():\n"
        "    sys.stdout.buffer.write(b'raw bytes\\n')\n    sys.stdout.buffer.flush()\n"
        "    print('then text')\n",
    )
    assert "raw bytes\nthen text\n" in stdout
    assert log == "raw bytes\nthen text\n"


def test_a_child_process_prints_in_order_and_into_the_execution_log(
    project: Path, run_magnus: Callable[..., Any]
) -> None:
    stdout, log = _one_step_output(
        project,
        run_magnus,
        "kids",
        "import os, subprocess\n\n\ndef kids():\n"
        "    print('one')\n    os.system('echo two')\n    print('three')\n"
        "    subprocess.run(['echo', 'four'], check=True)\n    print('five')\n",
    )
    assert "one\ntwo\nthree\nfour\nfive\n" in stdout
    assert log == "one\ntwo\nthree\nfour\nfive\n"
