"""Bad input: one clear line naming the file, step or key at fault, exit 2, and nothing lost.

Every case runs the command line in a project where an earlier run succeeded, then checks that
the run-log store and the catalog are byte for byte what they were. Most cases call the click
command in this process (fast); a selection runs ``magnus`` as a real subprocess as well.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from helpers import run_magnus

from magnus.cli import cli

EARLIER_RUN = "earlier-run"

GOOD_PIPELINE = """
dag:
  start_at: make
  steps:
    make:
      type: task
      command_type: shell
      command: |
        mkdir -p data
        echo "some words" > data/words.txt
        export MAGNUS_PRM_count='3'
      catalog:
        put: [data/words.txt]
      next: fan
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: show
        steps:
          show:
            type: task
            command_type: shell
            command: echo "item $MAGNUS_MAP_VARIABLE"
            next: success
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""

REDUCER_MODULE = "def total(values):\n    return sum(v or 0 for v in values)\n"


def _dag(steps: dict[str, Any], start_at: Any = "a", **extra: Any) -> str:
    """A pipeline whose graph has ``steps`` plus the usual success and fail steps."""
    all_steps = {**steps, "success": {"type": "success"}, "fail": {"type": "fail"}}
    return yaml.safe_dump({"dag": {"start_at": start_at, "steps": all_steps, **extra}})


def _one(step: dict[str, Any], name: str = "a") -> str:
    """A pipeline of the single step ``name`` (then success)."""
    return _dag({name: step}, start_at=name)


def _task(**fields: Any) -> dict[str, Any]:
    return {"type": "task", "command_type": "shell", "command": "true", "next": "success", **fields}


def _branch(steps: dict[str, Any] | None = None) -> dict[str, Any]:
    body = steps or {"s": {"type": "stub", "next": "success"}}
    first = next(iter(body))
    return {
        "start_at": first,
        "steps": {**body, "success": {"type": "success"}, "fail": {"type": "fail"}},
    }


def _map(**fields: Any) -> dict[str, Any]:
    return {
        "type": "map",
        "iterate_on": "items",
        "iterate_as": "i",
        "next": "success",
        "branch": _branch(),
        **fields,
    }


def _config(block: str, service: dict[str, Any]) -> str:
    return yaml.safe_dump({block: service})


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


@dataclass
class Case:
    """One malformed input: the files it needs, the command, what the message must name."""

    id: str
    args: list[str]
    names: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _pipeline_case(id: str, text: str | bytes, *names: str, command: str = "validate") -> Case:
    return Case(id, [command, "-f", "bad/p.yaml"], list(names), {"bad/p.yaml": text})


def _config_case(id: str, text: str | bytes, *names: str) -> Case:
    """A bad configuration file; the message names the file, and the service and key."""
    return Case(
        id,
        ["validate", "-f", "good.yaml", "-c", "bad/c.yaml"],
        ["bad/c.yaml", *names],
        {"bad/c.yaml": text},
    )


def _parameters_case(id: str, text: str | bytes, *names: str) -> Case:
    return Case(
        id,
        ["execute", "-f", "good.yaml", "-p", "bad/params.yaml"],
        ["bad/params.yaml", *names],
        {"bad/params.yaml": text},
    )


STUB = {"type": "stub", "next": "success"}

CASES: list[Case] = [
    # ---------------------------------------------------------------- the pipeline file as YAML
    _pipeline_case("yaml-unclosed-bracket", "dag: [start_at\n", "bad/p.yaml", "line"),
    _pipeline_case("yaml-tab-indent", "dag:\n\tstart_at: a\n", "bad/p.yaml", "line"),
    _pipeline_case("yaml-bad-indent", "dag:\n  start_at: a\n steps: {}\n", "bad/p.yaml", "line"),
    _pipeline_case(
        "yaml-duplicate-step",
        "dag:\n  start_at: a\n  steps:\n    a: {type: stub, next: success}\n"
        "    a: {type: stub, next: fail}\n    success: {type: success}\n    fail: {type: fail}\n",
        "bad/p.yaml",
        "'a'",
        "line 5",
    ),
    _pipeline_case(
        "yaml-duplicate-field",
        "dag:\n  start_at: a\n  steps:\n    a:\n      type: stub\n      next: success\n"
        "      next: fail\n    success: {type: success}\n    fail: {type: fail}\n",
        "bad/p.yaml",
        "'next'",
        "line 7",
    ),
    _pipeline_case("yaml-duplicate-top", "dag: {}\ndag: {}\n", "bad/p.yaml", "'dag'"),
    _pipeline_case("binary-file", bytes(range(256)) * 4, "bad/p.yaml", "UTF-8"),
    _pipeline_case("latin-1-file", "dag:\n  name: caf\xe9\n".encode("latin-1"), "bad/p.yaml"),
    _pipeline_case("nul-byte", "dag:\n  start_at: a\x00\n", "bad/p.yaml"),
    _pipeline_case("empty-file", "", "bad/p.yaml", "'dag'"),
    _pipeline_case("comment-only", "# nothing here\n", "bad/p.yaml", "'dag'"),
    _pipeline_case("top-level-list", "- dag\n", "bad/p.yaml", "'dag'"),
    _pipeline_case("top-level-scalar", "just text\n", "bad/p.yaml", "'dag'"),
    _pipeline_case("no-dag-key", "steps: {}\n", "bad/p.yaml", "'dag'"),
    _pipeline_case(
        "unknown-top-level-key", _one(STUB) + "dga:\n  start_at: a\n", "bad/p.yaml", "'dga'"
    ),
    _pipeline_case("alias-bomb", "dag:\n" + textwrap.indent(BOMB, "  "), "bad/p.yaml", "aliases"),
    _pipeline_case("self-alias", "dag: &a [*a]\n", "bad/p.yaml", "itself"),
    _pipeline_case("python-tag", "dag: !!python/object:os.system {}\n", "bad/p.yaml", "python"),
    _pipeline_case("dag-is-list", "dag: [a, b]\n", "bad/p.yaml", "mapping"),
    _pipeline_case("dag-is-null", "dag:\n", "bad/p.yaml", "mapping"),
    Case("pipeline-missing", ["validate", "-f", "bad/none.yaml"], ["bad/none.yaml"]),
    Case(
        "pipeline-is-directory",
        ["validate", "-f", "bad"],
        ["'bad'", "directory"],
        {"bad/x.txt": ""},
    ),
    # ---------------------------------------------------------------- graph structure
    _pipeline_case("no-steps", yaml.safe_dump({"dag": {"start_at": "a"}}), "'steps'"),
    _pipeline_case(
        "empty-steps", yaml.safe_dump({"dag": {"start_at": "a", "steps": {}}}), "'steps'"
    ),
    _pipeline_case(
        "steps-is-list", yaml.safe_dump({"dag": {"start_at": "a", "steps": ["a"]}}), "'steps'"
    ),
    _pipeline_case("no-start-at", _dag({"a": STUB}).replace("start_at: a", "name: x"), "start_at"),
    _pipeline_case("start-at-unknown", _dag({"a": STUB}, start_at="zz"), "'zz'"),
    _pipeline_case("start-at-list", _dag({"a": STUB}, start_at=["a"]), "start_at"),
    _pipeline_case("unknown-graph-key", _dag({"a": STUB}, strat_at="a"), "'strat_at'"),
    _pipeline_case("max-time-text", _dag({"a": STUB}, max_time="soon"), "max_time"),
    _pipeline_case(
        "no-success-step",
        yaml.safe_dump(
            {
                "dag": {
                    "start_at": "a",
                    "steps": {"a": {"type": "stub", "next": "fail"}, "fail": {"type": "fail"}},
                }
            }
        ),
        "success",
    ),
    _pipeline_case(
        "two-success-steps",
        _dag({"a": STUB, "done": {"type": "success"}}),
        "success",
        "found 2",
    ),
    _pipeline_case(
        "no-fail-step",
        yaml.safe_dump(
            {"dag": {"start_at": "a", "steps": {"a": STUB, "success": {"type": "success"}}}}
        ),
        "fail",
    ),
    _pipeline_case("next-missing-step", _one({"type": "stub", "next": "nowhere"}), "'nowhere'"),
    _pipeline_case("on-failure-missing-step", _one({**STUB, "on_failure": "rescue"}), "'rescue'"),
    _pipeline_case(
        "cycle",
        _dag({"a": {"type": "stub", "next": "b"}, "b": {"type": "stub", "next": "a"}}),
        "cycle",
        "a -> b -> a",
    ),
    _pipeline_case("self-loop", _one({"type": "stub", "next": "a"}), "cycle", "a -> a"),
    _pipeline_case("step-without-type", _one({"next": "success"}), "'a'", "'type'"),
    _pipeline_case("unknown-type", _one({"type": "taks", "next": "success"}), "'a'", "'taks'"),
    _pipeline_case("capitalised-type", _one({"type": "Task", "next": "success"}), "'Task'"),
    _pipeline_case("step-is-scalar", _one("stub"), "'a'", "mapping"),  # type: ignore[arg-type]
    _pipeline_case("step-is-list", _one(["stub"]), "'a'", "mapping"),  # type: ignore[arg-type]
    _pipeline_case("step-name-dot", _one(STUB, name="a.b"), "'a.b'"),
    _pipeline_case("step-name-percent", _one(STUB, name="a%b"), "'a%b'"),
    _pipeline_case("step-name-absolute", _one(STUB, name="/tmp/stolen"), "'/tmp/stolen'"),
    _pipeline_case("step-name-slash", _one(STUB, name="up/../../x"), "up/../../x"),
    _pipeline_case("step-name-backslash", _one(STUB, name="a\\b"), "a\\\\b"),
    _pipeline_case("step-name-nul", _one(STUB, name="a\0b"), "a\\x00b"),
    _pipeline_case("step-name-empty", _one(STUB, name=" "), "' '"),
    # ---------------------------------------------------------------- step fields
    _pipeline_case("task-no-command", _one({"type": "task", "next": "success"}), "'a'", "command"),
    _pipeline_case("task-command-list", _one(_task(command=["ls"])), "'a'", "command"),
    _pipeline_case("task-bad-command-type", _one(_task(command_type="bash")), "'a'", "'bash'"),
    _pipeline_case("task-unknown-field", _one(_task(comand="x")), "'a'", "'comand'"),
    _pipeline_case("task-no-next", _one({"type": "stub"}), "'a'", "next"),
    _pipeline_case("task-next-list", _one(_task(next=["success"])), "'a'", "next"),
    _pipeline_case("task-max-attempts-zero", _one(_task(max_attempts=0)), "'a'", "max_attempts"),
    _pipeline_case("task-max-attempts-text", _one(_task(max_attempts="many")), "max_attempts"),
    _pipeline_case("task-on-failure-list", _one(_task(on_failure=["fail"])), "on_failure"),
    _pipeline_case("task-overrides-list", _one(_task(overrides=["x"])), "'a'", "overrides"),
    _pipeline_case("catalog-is-text", _one(_task(catalog="data/*")), "'a'", "catalog"),
    _pipeline_case("catalog-unknown-key", _one(_task(catalog={"gett": ["x"]})), "catalog.gett"),
    _pipeline_case("catalog-get-int", _one(_task(catalog={"get": 3})), "'a'", "catalog.get"),
    _pipeline_case("catalog-put-ints", _one(_task(catalog={"put": [1]})), "catalog.put"),
    _pipeline_case("shell-command-mapping", _one(_task(command={"run": "ls"})), "'a'", "command"),
    _pipeline_case(
        "notebook-not-ipynb",
        _one(_task(command_type="notebook", command="analysis.py")),
        "'a'",
        "ipynb",
    ),
    _pipeline_case(
        "success-with-next",
        _dag({"a": STUB}).replace(
            "success:\n      type: success", "success:\n      next: a\n      type: success"
        ),
        "'success'",
        "'next'",
    ),
    _pipeline_case(
        "fail-with-extra",
        _dag({"a": STUB}).replace(
            "fail:\n      type: fail", "fail:\n      colour: red\n      type: fail"
        ),
        "'fail'",
        "'colour'",
    ),
    _pipeline_case(
        "parallel-no-branches", _one({"type": "parallel", "next": "success"}), "'a'", "branches"
    ),
    _pipeline_case(
        "parallel-branches-list",
        _one({"type": "parallel", "next": "success", "branches": ["x"]}),
        "branches",
    ),
    _pipeline_case(
        "parallel-branch-no-start-at",
        _one(
            {
                "type": "parallel",
                "next": "success",
                "branches": {"left": {"steps": _branch()["steps"]}},
            }
        ),
        "a.left",
        "start_at",
    ),
    _pipeline_case(
        "parallel-branch-name-dot",
        _one({"type": "parallel", "next": "success", "branches": {"l.r": _branch()}}),
        "'l.r'",
    ),
    _pipeline_case(
        "parallel-branch-cycle",
        _one(
            {
                "type": "parallel",
                "next": "success",
                "branches": {
                    "left": _branch(
                        {"x": {"type": "stub", "next": "y"}, "y": {"type": "stub", "next": "x"}}
                    )
                },
            }
        ),
        "a.left",
        "cycle",
    ),
    _pipeline_case(
        "map-no-iterate-on",
        _one({k: v for k, v in _map().items() if k != "iterate_on"}),
        "iterate_on",
    ),
    _pipeline_case(
        "map-no-iterate-as",
        _one({k: v for k, v in _map().items() if k != "iterate_as"}),
        "iterate_as",
    ),
    _pipeline_case(
        "map-no-branch", _one({k: v for k, v in _map().items() if k != "branch"}), "'a'", "branch"
    ),
    _pipeline_case("map-reducer-word", _one(_map(reducer="sum")), "'a'", "'sum'"),
    _pipeline_case(
        "map-reducer-not-importable",
        _one(_map(reducer="nowhere.module.total")),
        "'a'",
        "nowhere.module",
    ),
    _pipeline_case(
        "map-reducer-no-function", _one(_map(reducer="reducers.missing")), "'a'", "missing"
    ),
    _pipeline_case(
        "nested-maps-same-iterate-as",
        _one(_map(branch=_branch({"inner": _map()}))),
        "inner",
        "'i'",
    ),
    _pipeline_case(
        "nested-maps-same-name-through-parallel",
        _one(
            _map(
                branch=_branch(
                    {
                        "par": {
                            "type": "parallel",
                            "next": "success",
                            "branches": {"x": _branch({"deep": _map()})},
                        }
                    }
                )
            )
        ),
        "deep",
        "'i'",
    ),
    _pipeline_case(
        "dag-no-definition", _one({"type": "dag", "next": "success"}), "'a'", "dag_definition"
    ),
    _pipeline_case(
        "dag-definition-not-yaml",
        _one({"type": "dag", "next": "success", "dag_definition": "sub.json"}),
        "dag_definition",
    ),
    _pipeline_case(
        "dag-definition-missing",
        _one({"type": "dag", "next": "success", "dag_definition": "bad/none.yaml"}),
        "bad/none.yaml",
    ),
    _pipeline_case(
        "dag-includes-itself",
        _one({"type": "dag", "next": "success", "dag_definition": "bad/p.yaml"}),
        "includes itself",
        "bad/p.yaml -> bad/p.yaml",
    ),
    _pipeline_case(
        "dag-definition-nul",
        _one({"type": "dag", "next": "success", "dag_definition": "bad/x\0.yaml"}),
        "bad/x\\x00.yaml",
    ),
    _pipeline_case(
        "dag-definition-name-too-long",
        _one({"type": "dag", "next": "success", "dag_definition": "n" * 300 + ".yaml"}),
        "File name too long",
    ),
    Case(
        "dag-include-cycle",
        ["validate", "-f", "bad/p.yaml"],
        ["includes itself", "bad/p.yaml -> bad/q.yaml -> bad/p.yaml"],
        {
            "bad/p.yaml": _one({"type": "dag", "next": "success", "dag_definition": "bad/q.yaml"}),
            "bad/q.yaml": _one({"type": "dag", "next": "success", "dag_definition": "bad/p.yaml"}),
        },
    ),
    Case(
        "dag-definition-binary",
        ["validate", "-f", "bad/p.yaml"],
        ["bad/sub.yaml", "UTF-8"],
        {
            "bad/p.yaml": _one(
                {"type": "dag", "next": "success", "dag_definition": "bad/sub.yaml"}
            ),
            "bad/sub.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\xff",
        },
    ),
    Case(
        "dag-definition-without-dag",
        ["validate", "-f", "bad/p.yaml"],
        ["bad/sub.yaml", "'dag'"],
        {
            "bad/p.yaml": _one(
                {"type": "dag", "next": "success", "dag_definition": "bad/sub.yaml"}
            ),
            "bad/sub.yaml": "steps: {}\n",
        },
    ),
    Case(
        "dag-definition-duplicate-step",
        ["validate", "-f", "bad/p.yaml"],
        ["bad/sub.yaml", "'x'"],
        {
            "bad/p.yaml": _one(
                {"type": "dag", "next": "success", "dag_definition": "bad/sub.yaml"}
            ),
            "bad/sub.yaml": "dag:\n  start_at: x\n  steps:\n    x: {type: stub, next: success}\n"
            "    x: {type: stub, next: success}\n    success: {type: success}\n"
            "    fail: {type: fail}\n",
        },
    ),
    _pipeline_case(
        "execute-bad-pipeline",
        _one({"type": "taks", "next": "success"}),
        "'taks'",
        command="execute",
    ),
    # ---------------------------------------------------------------- configuration files
    _config_case("config-syntax", "executor: {type: local\n", "bad/c.yaml", "line"),
    _config_case("config-list", "- executor\n", "bad/c.yaml", "mapping"),
    _config_case("config-binary", b"\xff\xfe\x00executor", "bad/c.yaml", "UTF-8"),
    _config_case(
        "config-duplicate-key",
        "executor: {type: local}\nexecutor: {type: local}\n",
        "bad/c.yaml",
        "'executor'",
    ),
    _config_case("config-unknown-service", "executer: {type: local}\n", "bad/c.yaml", "'executer'"),
    _config_case("executor-unknown-type", _config("executor", {"type": "lokal"}), "'lokal'"),
    _config_case(
        "run-log-store-unknown-type", _config("run_log_store", {"type": "chunked"}), "'chunked'"
    ),
    _config_case("catalog-unknown-type", _config("catalog", {"type": "s4"}), "'s4'"),
    _config_case("secrets-unknown-type", _config("secrets", {"type": "vaultt"}), "'vaultt'"),
    _config_case(
        "tracker-unknown-type", _config("experiment_tracker", {"type": "mlfow"}), "'mlfow'"
    ),
    _config_case(
        "executor-unknown-config",
        _config("executor", {"type": "local", "config": {"paralel": True}}),
        "'local'",
        "'paralel'",
    ),
    _config_case(
        "executor-config-wrong-type",
        _config("executor", {"type": "local", "config": {"max_workers": "many"}}),
        "'local'",
        "max_workers",
    ),
    _config_case(
        "run-log-store-unknown-config",
        _config("run_log_store", {"type": "chunked-fs", "config": {"folder": "x"}}),
        "'chunked-fs'",
        "'folder'",
    ),
    _config_case(
        "catalog-unknown-config",
        _config("catalog", {"type": "file-system", "config": {"location": "x"}}),
        "'file-system'",
        "'location'",
    ),
    _config_case(
        "secrets-unknown-config",
        _config("secrets", {"type": "do-nothing", "config": {"token": "x"}}),
        "'do-nothing'",
        "'token'",
    ),
    _config_case(
        "tracker-unknown-config",
        _config("experiment_tracker", {"type": "do-nothing", "config": {"uri": "x"}}),
        "experiment_tracker",
        "'uri'",
    ),
    _config_case(
        "service-block-no-type", _config("catalog", {"config": {}}), "bad/c.yaml", "catalog.type"
    ),
    _config_case("service-block-text", "catalog: file-system\n", "bad/c.yaml", "catalog"),
    _config_case(
        "service-block-unknown-key",
        _config("catalog", {"type": "file-system", "cfg": {}}),
        "bad/c.yaml",
        "catalog.cfg",
    ),
    _config_case(
        "service-config-list",
        _config("catalog", {"type": "file-system", "config": [1]}),
        "bad/c.yaml",
        "catalog.config",
    ),
    Case(
        "config-missing", ["validate", "-f", "good.yaml", "-c", "bad/none.yaml"], ["bad/none.yaml"]
    ),
    Case(
        "config-directory",
        ["validate", "-f", "good.yaml", "-c", "bad"],
        ["'bad'"],
        {"bad/x.txt": ""},
    ),
    Case(
        "configuration-file-variable-missing",
        ["validate", "-f", "good.yaml"],
        ["bad/elsewhere.yaml"],
        env={"MAGNUS_CONFIGURATION_FILE": "bad/elsewhere.yaml"},
    ),
    Case(
        "project-defaults-unknown-key",
        ["validate", "-f", "good.yaml"],
        ["magnus-config.yaml", "'default'"],
        {"magnus-config.yaml": "default:\n  catalog: {type: file-system}\n"},
    ),
    Case(
        "project-defaults-bad-yaml",
        ["validate", "-f", "good.yaml"],
        ["magnus-config.yaml", "line"],
        {"magnus-config.yaml": "defaults: [\n"},
    ),
    # ---------------------------------------------------------------- parameters files
    _parameters_case("parameters-syntax", "items: [1, 2\n", "line"),
    _parameters_case("parameters-list", "- 1\n- 2\n", "list"),
    _parameters_case("parameters-scalar", "42\n", "int"),
    _parameters_case("parameters-int-key", "1: one\n", "1"),
    _parameters_case("parameters-equals-key", '"a=b": 1\n', "'a=b'"),
    _parameters_case("parameters-empty-key", '"": 1\n', "''"),
    _parameters_case("parameters-nul-key", '"a\\0b": 1\n', "'a\\x00b'"),
    _parameters_case("parameters-alias-bomb", BOMB, "aliases"),
    _parameters_case(
        "parameters-big-string-alias",
        "s: &s " + "x" * 100_000 + "\nmany: [" + ", ".join(["*s"] * 200) + "]\n",
        "aliases",
    ),
    _parameters_case("parameters-self-alias", "a: &a [*a]\n", "itself"),
    _parameters_case("parameters-duplicate-key", "items: [1]\nitems: [2]\n", "'items'", "line 2"),
    _parameters_case("parameters-binary", b"\x00\x01\x02\xff" * 64, "UTF-8"),
    _parameters_case("parameters-tag", "a: !!python/name:os.system\n", "python"),
    _parameters_case("parameters-binary-value", "items: [1]\nb: !!binary /w==\n", "'b'"),
    _parameters_case("parameters-huge-int", "items: [1]\nbig: " + "9" * 5000 + "\n", "4300"),
    _parameters_case("parameters-impossible-date", "items: [1]\nday: 2024-13-45\n", "month"),
    Case(
        "parameters-missing",
        ["execute", "-f", "good.yaml", "-p", "bad/none.yaml"],
        ["bad/none.yaml"],
    ),
    Case(
        "parameters-directory",
        ["execute", "-f", "good.yaml", "-p", "bad"],
        ["bad"],
        {"bad/x.txt": ""},
    ),
    # ---------------------------------------------------------------- command-line values
    Case("run-id-space", ["execute", "-f", "good.yaml", "--run-id", "my run"], ["'my run'"]),
    Case("run-id-path", ["execute", "-f", "good.yaml", "--run-id", "../escape"], ["'../escape'"]),
    Case("run-id-too-long", ["execute", "-f", "good.yaml", "--run-id", "r" * 200], ["r" * 200]),
    Case(
        "run-id-exists",
        ["execute", "-f", "good.yaml", "--run-id", EARLIER_RUN],
        [f"'{EARLIER_RUN}'", "already exists"],
    ),
    Case(
        "use-cached-invalid-id",
        ["execute", "-f", "good.yaml", "--use-cached", "no such"],
        ["'no such'"],
    ),
    Case("retry-invalid-id", ["retry", "no/such"], ["no/such"]),
    Case("retry-missing-run", ["retry", "never-ran"], ["never-ran"]),
    Case("show-missing-run", ["runs", "show", "never-ran"], ["never-ran"]),
    Case("show-missing-step", ["runs", "show", EARLIER_RUN, "--step", "nope"], ["'nope'"]),
    Case(
        "map-variable-not-json",
        ["execute_single_node", EARLIER_RUN, "make", "--map-variable", "{item: 1"],
        ["--map-variable"],
    ),
    Case(
        "map-variable-list",
        ["execute_single_node", EARLIER_RUN, "make", "--map-variable", "[1, 2]"],
        ["--map-variable"],
    ),
    Case("single-node-unknown-step", ["execute_single_node", EARLIER_RUN, "nope"], ["'nope'"]),
    Case("single-branch-unknown", ["execute_single_branch", EARLIER_RUN, "fan.x.y"], ["fan.x"]),
    Case("fan-leaf-step", ["fan", EARLIER_RUN, "make", "-m", "out"], ["'make'", "composite"]),
    # ---------------------------------------------------------------- environment
    Case(
        "plugin-module-missing",
        ["validate", "-f", "good.yaml"],
        ["MAGNUS_PLUGINS", "no_such_plugin"],
        env={"MAGNUS_PLUGINS": "no_such_plugin"},
    ),
    Case(
        "plugin-module-raises",
        ["validate", "-f", "good.yaml"],
        ["MAGNUS_PLUGINS", "broken_plugin", "division by zero"],
        {"broken_plugin.py": "1 / 0\n"},
        env={"MAGNUS_PLUGINS": "broken_plugin"},
    ),
    Case(
        "configuration-file-variable-directory",
        ["validate", "-f", "good.yaml"],
        ["'bad'", "directory"],
        {"bad/x.txt": ""},
        env={"MAGNUS_CONFIGURATION_FILE": "bad"},
    ),
    Case(
        "configuration-file-variable-binary",
        ["execute", "-f", "good.yaml"],
        ["bad/c.yaml", "UTF-8"],
        {"bad/c.yaml": b"\xfe\xff\x00\x01"},
        env={"MAGNUS_CONFIGURATION_FILE": "bad/c.yaml"},
    ),
]

#: Cases that also run as a real ``magnus`` subprocess: one of each kind of input.
SUBPROCESS_CASES = {
    "yaml-duplicate-step",
    "binary-file",
    "unknown-top-level-key",
    "dag-includes-itself",
    "step-name-absolute",
    "nested-maps-same-iterate-as",
    "map-reducer-not-importable",
    "config-binary",
    "executor-unknown-type",
    "parameters-alias-bomb",
    "parameters-equals-key",
    "run-id-exists",
    "map-variable-not-json",
}


def _snapshot(project: Path) -> dict[str, str]:
    """SHA-256 of every file of the run-log store and the catalog, by path."""
    found = {}
    for folder in (".run_log_store", ".catalog"):
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(project))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return found


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A project where a run succeeded, and the snapshot of its records."""
    project = tmp_path_factory.mktemp("bad-input")
    (project / "good.yaml").write_text(GOOD_PIPELINE)
    (project / "params.yaml").write_text("items: [one, two]\n")
    (project / "reducers.py").write_text(REDUCER_MODULE)
    result = run_magnus(
        "execute", "-f", "good.yaml", "-p", "params.yaml", "--run-id", EARLIER_RUN, cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = _snapshot(project)
    assert any(p.startswith(f".run_log_store/{EARLIER_RUN}/") for p in snapshot)
    assert f".catalog/{EARLIER_RUN}/data/words.txt" in snapshot
    return project, snapshot


@pytest.fixture
def case_files(earlier: tuple[Path, dict[str, str]]) -> Iterator[Any]:
    """Write a case's files into the project; remove them afterwards."""
    project, _ = earlier
    written: list[Path] = []

    def write(files: dict[str, str | bytes]) -> None:
        for name, content in files.items():
            path = project / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            written.append(path)

    yield write
    shutil.rmtree(project / "bad", ignore_errors=True)
    for path in written:
        path.unlink(missing_ok=True)


def _check(case: Case, code: int, stderr: str, project: Path, before: dict[str, str]) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for name in case.names:
        assert name in lines[0], (name, lines[0])
    assert _snapshot(project) == before


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_in_process(
    case: Case,
    earlier: tuple[Path, dict[str, str]],
    case_files: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, before = earlier
    case_files(case.files)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    saved = dict(os.environ)  # a run exports MAGNUS_RUN_ID and the like into this process
    try:
        result = CliRunner().invoke(cli, case.args, env=case.env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    _check(case, result.exit_code, result.stderr, project, before)


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if case.id in SUBPROCESS_CASES],
    ids=lambda case: case.id,
)
def test_bad_input_subprocess(
    case: Case, earlier: tuple[Path, dict[str, str]], case_files: Any
) -> None:
    project, before = earlier
    case_files(case.files)
    result = run_magnus(*case.args, cwd=project, env=case.env)
    _check(case, result.returncode, result.stderr, project, before)


def test_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)
    assert len({(tuple(case.args), repr(case.files), repr(case.env)) for case in CASES}) == len(
        CASES
    )
    assert {case.id for case in CASES} >= SUBPROCESS_CASES


@pytest.mark.parametrize(
    ("parameters", "environment", "reason"),
    [
        ("items: 5\n", {}, "'items', which must be a list, not int"),
        ("items: {a: 1}\n", {}, "'items', which must be a list, not dict"),
        ("items: [a, b, a, 1, '1']\n", {}, "same branch name more than once (1, a)"),
        ("other: 1\n", {}, "'items', which is not set"),
        ("items: [a]\n", {"MAGNUS_PRM_items": "[1, 2"}, "'items', which must be a list, not str"),
    ],
    ids=["number", "mapping", "duplicates", "missing", "environment-not-json"],
)
def test_a_map_that_cannot_fan_out_says_why(
    tmp_path: Path, parameters: str, environment: dict[str, str], reason: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD_PIPELINE)
    (tmp_path / "params.yaml").write_text(parameters)
    args = ["execute", "-f", "good.yaml", "-p", "params.yaml"]
    result = run_magnus(*args, cwd=tmp_path, env=environment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "map 'fan'" in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_file_included_by_several_steps_is_not_a_cycle(tmp_path: Path) -> None:
    sub = {"type": "dag", "next": "success", "dag_definition": "sub.yaml"}
    (tmp_path / "sub.yaml").write_text(_one(STUB))
    (tmp_path / "middle.yaml").write_text(_dag({"a": {**sub, "next": "b"}, "b": sub}))
    (tmp_path / "p.yaml").write_text(
        _one({"type": "dag", "next": "success", "dag_definition": "middle.yaml"})
    )
    result = run_magnus("validate", "-f", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_reducer_that_fails_says_why(tmp_path: Path) -> None:
    body = _task(command="export MAGNUS_PRM_y=1")
    (tmp_path / "p.yaml").write_text(
        _one(_map(reducer="nowhere.module.total", branch=_branch({"s": body})))
    )
    (tmp_path / "params.yaml").write_text("items: [1, 2]\n")
    result = run_magnus("execute", "-f", "p.yaml", "-p", "params.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nowhere.module.total" in result.stderr and "'y'" in result.stderr, result.stderr
