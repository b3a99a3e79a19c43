"""Reuse by fingerprint, end to end: which steps run, which are taken from an earlier run.

Every run's log says it: a step that ran has attempts and is not ``mock``; a reused step is
``mock`` and names the run and step it came from (``reused_from``, ``reused_from_step``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_magnus, show_run

from magnus.catalog import file_hash

pytestmark = pytest.mark.e2e

STEPS = """
from pathlib import Path

import magnus


def first(x: int):
    Path("data").mkdir(exist_ok=True)
    Path("data/a.txt").write_text(f"a {x}")
    return {"y": x + 1}


def third(y: int):
    return {"z": y * 10}


def element(item: int):
    return {"value": item * 100}


def side():
    return {}


def other_side():
    return {}


def new_side():
    return {}


def peek():
    return {"seen": magnus.get_parameter("x")}


def after(seen: int):
    return {"twice": seen * 2}
"""

LINEAR: dict[str, dict[str, Any]] = {
    "first": {"type": "task", "command": "steps.first", "catalog": {"put": ["data/a.txt"]}},
    "second": {
        "type": "task",
        "command_type": "shell",
        "command": "cat data/a.txt data/a.txt > data/b.txt",
        "catalog": {"get": ["data/a.txt"], "put": ["data/b.txt"]},
    },
    "third": {"type": "task", "command": "steps.third"},
}


def dag(steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A pipeline of ``steps`` in order, each leading to the next."""
    names = list(steps)
    chained = {
        name: {**step, "next": names[i + 1] if i + 1 < len(names) else "success"}
        for i, (name, step) in enumerate(steps.items())
    }
    chained.update(success={"type": "success"}, fail={"type": "fail"})
    return {"start_at": names[0], "steps": chained}


def branch(step: dict[str, Any]) -> dict[str, Any]:
    return dag({"work": step})


@pytest.fixture
def reuse_project(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "params.yaml").write_text("x: 1\n")
    write_pipeline(tmp_path, "linear.yaml", LINEAR)
    return tmp_path


def write_pipeline(project: Path, name: str, steps: dict[str, dict[str, Any]]) -> None:
    (project / name).write_text(yaml.safe_dump({"dag": dag(steps)}))


def execute(project: Path, pipeline: str, run_id: str, *options: str) -> dict[str, Any]:
    """Run ``pipeline`` (it must succeed) and return its run log, as ``runs show`` gives it."""
    result = run_magnus(
        "execute", "-f", pipeline, "-p", "params.yaml", "--run-id", run_id, *options, cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = ("-c", options[options.index("-c") + 1]) if "-c" in options else ()
    log = show_run(run_id, project, *config)
    assert log["status"] == "SUCCESS"
    return log


def leaves(steps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task step of a run log, in branches too, by internal name."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps.values():
        if step["step_type"] == "task":
            found[step["internal_name"]] = step
        for inner in step["branches"].values():
            found.update(leaves(inner["steps"]))
    return found


def ran(log: dict[str, Any]) -> set[str]:
    """The task steps that ran; every other task step must have been reused."""
    names = set()
    for name, step in leaves(log["steps"]).items():
        if step["mock"]:
            assert step["reused_from"] and step["reused_from_step"], step
            assert step["message"].startswith("reused from run")
        else:
            assert step["attempts"] and "reused_from" not in step, step
            names.add(name)
    return names


def reused(log: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each reused task step: the run and step it came from."""
    return {
        name: (step["reused_from"], step["reused_from_step"])
        for name, step in leaves(log["steps"]).items()
        if step["mock"]
    }


def catalogued(log: dict[str, Any]) -> dict[str, str]:
    """Every file put in the catalog by a task step (no execution logs): name -> sha256."""
    return {
        entry["name"]: entry["data_hash"]
        for step in leaves(log["steps"]).values()
        for entry in step["data_catalog"]
        if entry["stage"] == "put" and ".execution.log" not in entry["name"]
    }


LINEAR_STEPS = {"first", "second", "third"}


@pytest.mark.parametrize("store", ["chunked-fs", "file-system"])
def test_a_second_run_with_reuse_takes_every_step_and_its_data(
    reuse_project: Path, store: str
) -> None:
    (reuse_project / "store.yaml").write_text(f"run_log_store: {{type: {store}}}\n")
    options = ("--reuse", "-c", "store.yaml")
    first = execute(reuse_project, "linear.yaml", "one", *options)
    assert ran(first) == LINEAR_STEPS  # nothing earlier to take
    shutil.rmtree(reuse_project / "data")  # a fresh checkout: only the catalog has the data

    second = execute(reuse_project, "linear.yaml", "two", *options)
    assert ran(second) == set()
    assert reused(second) == {name: ("one", name) for name in LINEAR_STEPS}
    assert second["parameters"] == first["parameters"] == {"x": 1, "y": 2, "z": 20}
    for name in LINEAR_STEPS:
        earlier = first["steps"][name]["attempts"][-1]
        taken = second["steps"][name]["attempts"]
        assert [a["fingerprint"] for a in taken] == [earlier["fingerprint"]]
        assert taken[0]["output_parameters"] == earlier["output_parameters"]
    hashes = catalogued(second)
    assert hashes == catalogued(first) and set(hashes) == {"data/a.txt", "data/b.txt"}
    for name, data_hash in hashes.items():
        assert file_hash(reuse_project / ".catalog" / "two" / name) == data_hash
        assert file_hash(reuse_project / name) == data_hash  # where the step would leave it
    assert second["run_config"]["reuse"] is True


def test_reuse_is_off_unless_asked_and_a_step_cache_decides_for_it(reuse_project: Path) -> None:
    execute(reuse_project, "linear.yaml", "one")
    assert ran(execute(reuse_project, "linear.yaml", "two")) == LINEAR_STEPS

    write_pipeline(
        reuse_project,
        "cached.yaml",
        {
            "first": {**LINEAR["first"], "cache": True},
            "second": {**LINEAR["second"], "cache": False},
            "third": LINEAR["third"],
        },
    )
    assert ran(execute(reuse_project, "cached.yaml", "three")) == {"second", "third"}
    assert ran(execute(reuse_project, "cached.yaml", "four", "--reuse")) == {"second"}


def test_a_renamed_step_is_the_same_step(reuse_project: Path) -> None:
    execute(reuse_project, "linear.yaml", "one")
    renamed = {"first": LINEAR["first"], "second": LINEAR["second"], "last": LINEAR["third"]}
    write_pipeline(reuse_project, "renamed.yaml", renamed)
    log = execute(reuse_project, "renamed.yaml", "two", "--reuse")
    # a fingerprint holds what a step does, not what it is called
    assert reused(log) == {
        "first": ("one", "first"),
        "second": ("one", "second"),
        "last": ("one", "third"),
    }
    assert log["parameters"]["z"] == 20


def test_reuse_from_the_configuration_and_its_override(reuse_project: Path) -> None:
    execute(reuse_project, "linear.yaml", "one")
    (reuse_project / "reusing.yaml").write_text("reuse: true\n")
    log = execute(reuse_project, "linear.yaml", "two", "-c", "reusing.yaml")
    assert ran(log) == set() and log["run_config"]["reuse"] is True

    (reuse_project / "magnus-config.yaml").write_text("defaults:\n  reuse: true\n")
    assert ran(execute(reuse_project, "linear.yaml", "three")) == set()
    log = execute(reuse_project, "linear.yaml", "four", "--no-reuse")
    assert ran(log) == LINEAR_STEPS and log["run_config"]["reuse"] is False
    (reuse_project / "not-reusing.yaml").write_text("reuse: false\n")
    assert ran(execute(reuse_project, "linear.yaml", "five", "-c", "not-reusing.yaml")) == (
        LINEAR_STEPS
    )


COMPOSITES: dict[str, Any] = {
    "fan": {
        "type": "map",
        "iterate_on": "items",
        "iterate_as": "item",
        "branch": branch({"type": "task", "command": "steps.element"}),
    },
    "both": {
        "type": "parallel",
        "branches": {
            # python functions that bind nothing: a shell step would consume the map's list
            "left": branch({"type": "task", "command": "steps.side"}),
            "right": branch({"type": "task", "command": "steps.other_side"}),
        },
    },
}

PARALLEL = "executor: {type: local, config: {enable_parallel: true, max_workers: 2}}\n"


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "enable_parallel"])
def test_maps_and_parallel_branches_reuse_per_element_and_branch(
    reuse_project: Path, parallel: bool
) -> None:
    (reuse_project / "run.yaml").write_text(PARALLEL if parallel else "executor: {type: local}\n")
    write_pipeline(reuse_project, "fan.yaml", COMPOSITES)
    (reuse_project / "params.yaml").write_text("items: [1, 2, 3]\n")
    # map branches are named by their element
    everything = {"fan.1.work", "fan.2.work", "fan.3.work", "both.left.work", "both.right.work"}
    first = execute(reuse_project, "fan.yaml", "one", "-c", "run.yaml", "--reuse")
    assert ran(first) == everything

    (reuse_project / "params.yaml").write_text("items: [1, 2, 4]\n")
    right = COMPOSITES["both"]["branches"]["right"]["steps"]["work"]
    edited = {**COMPOSITES, "both": {**COMPOSITES["both"]}}
    edited["both"]["branches"] = {
        **COMPOSITES["both"]["branches"],
        "right": branch({**right, "command": "steps.new_side"}),
    }
    write_pipeline(reuse_project, "fan.yaml", edited)
    second = execute(reuse_project, "fan.yaml", "two", "-c", "run.yaml", "--reuse")
    assert ran(second) == {"fan.4.work", "both.right.work"}
    assert reused(second) == {
        "fan.2.work": ("one", "fan.2.work"),
        "fan.1.work": ("one", "fan.1.work"),
        "both.left.work": ("one", "both.left.work"),
    }
    assert second["parameters"]["value"] == [100, 200, 400]


def test_a_result_whose_data_is_gone_runs_again_and_says_why(reuse_project: Path) -> None:
    execute(reuse_project, "linear.yaml", "one")
    (reuse_project / ".catalog" / "one" / "data" / "a.txt").unlink()
    log = execute(reuse_project, "linear.yaml", "two", "--reuse")
    # first runs again; second gets the same data/a.txt and third the same y: both reused
    assert ran(log) == {"first"}
    reason = log["steps"]["first"]["not_reused"]
    assert "data/a.txt" in reason and "run one" in reason
    assert (
        file_hash(reuse_project / ".catalog" / "two" / "data" / "a.txt")
        == (catalogued(log)["data/a.txt"])
    )


def test_a_source_file_a_step_hands_to_the_catalog_is_an_input_of_it(reuse_project: Path) -> None:
    steps = {
        "ingest": {
            "type": "task",
            "command_type": "shell",
            "command": "test -s raw/in.txt",
            "catalog": {"put": ["raw/in.txt"]},
        },
        "load": {
            "type": "task",
            "command_type": "shell",
            "command": "cp raw/in.txt loaded.txt",
            "catalog": {"get": ["raw/in.txt"], "put": ["loaded.txt"]},
        },
    }
    write_pipeline(reuse_project, "ingest.yaml", steps)
    (reuse_project / "raw").mkdir()
    (reuse_project / "raw" / "in.txt").write_text("version 1\n")
    execute(reuse_project, "ingest.yaml", "one", "--reuse")

    (reuse_project / "raw" / "in.txt").write_text("version 2\n")
    log = execute(reuse_project, "ingest.yaml", "two", "--reuse")
    assert ran(log) == {"ingest", "load"}
    assert "raw/in.txt" in log["steps"]["ingest"]["not_reused"]
    # taking the earlier result would have put the earlier content back over the edit
    assert (reuse_project / "raw" / "in.txt").read_text() == "version 2\n"
    assert (reuse_project / ".catalog" / "two" / "loaded.txt").read_text() == "version 2\n"


def test_a_function_reading_parameters_through_the_api_always_runs(reuse_project: Path) -> None:
    steps = {
        "peek": {"type": "task", "command": "steps.peek"},
        "after": {"type": "task", "command": "steps.after"},
    }
    write_pipeline(reuse_project, "peek.yaml", steps)
    assert ran(execute(reuse_project, "peek.yaml", "one", "--reuse")) == {"peek", "after"}

    same = execute(reuse_project, "peek.yaml", "two", "--reuse")
    assert ran(same) == {"peek"}  # it produced the same: what follows is reused
    assert "interaction API" in same["steps"]["peek"]["not_reused"]

    (reuse_project / "params.yaml").write_text("x: 5\n")
    changed = execute(reuse_project, "peek.yaml", "three", "--reuse")
    assert ran(changed) == {"peek", "after"}
    assert changed["parameters"]["seen"] == 5 and changed["parameters"]["twice"] == 10


SDK_STEPS = """
def make(n: int = 3):
    return {"rows": list(range(n))}


def total(rows: list[int]):
    return {"sum": sum(rows)}
"""


def test_the_sdk_reuses_per_pipeline_and_per_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magnus import Pipeline, PythonTask

    (tmp_path / "reuse_sdk_steps.py").write_text(SDK_STEPS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "reuse_sdk_steps", raising=False)
    import reuse_sdk_steps  # type: ignore[import-not-found]

    pipeline = Pipeline(
        steps=[
            PythonTask(name="make", function=reuse_sdk_steps.make, cache=True),
            PythonTask(name="total", function=reuse_sdk_steps.total),
        ]
    )

    def outcome(run_id: str, **options: Any) -> dict[str, str]:
        log = pipeline.execute(run_id=run_id, **options)
        assert log is not None and log.status == "SUCCESS"
        assert log.parameters["sum"] == 3
        return {name: log.steps[name].reused_from or "ran" for name in ("make", "total")}

    assert outcome("s1") == {"make": "ran", "total": "ran"}
    assert outcome("s2") == {"make": "s1", "total": "ran"}  # the task's cache, not the run's
    assert outcome("s3", reuse=True) == {"make": "s2", "total": "s2"}
    assert outcome("s4", reuse=False) == {"make": "s3", "total": "ran"}
    # the same process sees the environment change between runs
    (tmp_path / "uv.lock").write_text("version = 1\n")
    assert outcome("s5", reuse=True) == {"make": "ran", "total": "ran"}


STALE_SCRIPT = """
import sys
from pathlib import Path

from magnus import Pipeline, PythonTask

import stale_steps

pipeline = Pipeline(steps=[PythonTask(name="make", function=stale_steps.make)])
for run_id in sys.argv[1:]:
    log = pipeline.execute(run_id=run_id, reuse=True)
    print(run_id, log.parameters["n"], log.steps["make"].reused_from or "ran")
    # An edit between two runs of one process: the module stays imported as it was.
    helper = Path("stale_helper.py")
    helper.write_text(helper.read_text().replace("return 1", "return 2"))
"""


def test_code_edited_after_it_was_imported_is_fingerprinted_as_it_runs(tmp_path: Path) -> None:
    (tmp_path / "stale_helper.py").write_text("def value():\n    return 1\n")
    (tmp_path / "stale_steps.py").write_text(
        "from stale_helper import value\n\n\ndef make():\n    return {'n': value()}\n"
    )
    (tmp_path / "script.py").write_text(STALE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}

    def run(*run_ids: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "script.py", *run_ids],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return [line for line in result.stdout.splitlines() if line.split(" ")[0] in run_ids]

    # The second run of the process still runs value() returning 1: what it records (reused
    # from the first, which computed 1) is what this process computes.
    assert run("a1", "a2") == ["a1 1 ran", "a2 1 a1"]
    # A new process imports value() returning 2: no earlier result was made by that code.
    assert run("a3") == ["a3 2 ran"]
