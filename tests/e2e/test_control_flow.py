"""Conditional and loop steps, end to end: YAML and SDK, sequential and enable_parallel, retries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

pytestmark = pytest.mark.e2e

STEPS = """
import os
from pathlib import Path

import magnus


def pick(size: str):
    return {"route": size}


def small():
    return {"result": "small"}


def large():
    return {"result": "large"}


def other():
    return {"result": "other"}


def grow(loop_iteration: int, total: int = 0, stop_at: int = 6):
    total = total + loop_iteration + 1
    assert magnus.get_loop_iteration() == loop_iteration
    return {"total": total, "done": total >= stop_at}


def flaky(loop_iteration: int, total: int = 0):
    if loop_iteration == 1 and not Path("fixed").exists():
        raise RuntimeError("iteration 1 fails until fixed")
    Path("ran").mkdir(exist_ok=True)
    (Path("ran") / f"flaky-{loop_iteration}").write_text("")
    return {"total": total + 1, "done": loop_iteration >= 2}


def side(name: str = "side"):
    return {"side_" + name: os.getpid()}


def after(result: str, total: int):
    return {"summary": f"{result}:{total}"}
"""


def _branch(step: str) -> str:
    """A one-task branch graph, inline."""
    return (
        f" {{start_at: {step}, steps: {{{step}: {{type: task, command: steps.{step}, "
        "next: success}, success: {type: success}, fail: {type: fail}}}"
    )


PIPELINE = f"""
dag:
  start_at: pick
  steps:
    pick: {{type: task, command: steps.pick, next: route}}
    route:
      type: conditional
      parameter: route
      branches:
        small:{_branch("small")}
        large:{_branch("large")}
DEFAULT
      next: train
    train:
      type: loop
      break_on: done
      max_iterations: MAX
      ON_EXHAUSTED
      branch:
          start_at: grow
          steps:
            grow: {{type: task, command: steps.grow, next: sides}}
            sides:
              type: parallel
              branches:
                a:{_branch("side")}
                b:{_branch("side")}
              next: success
            success: {{type: success}}
            fail: {{type: fail}}
      next: after
    after: {{type: task, command: steps.after, next: success}}
    success: {{type: success}}
    fail: {{type: fail}}
"""

DEFAULT = "      default:" + _branch("other")

PARALLEL_CONFIG = """
executor:
  type: local
  config:
    enable_parallel: true
"""


def _pipeline(default: bool = True, max_iterations: int = 5, exhausted: str = "") -> str:
    text = PIPELINE.replace("DEFAULT", DEFAULT if default else "")
    text = text.replace("MAX", str(max_iterations))
    return text.replace("ON_EXHAUSTED", f"on_exhausted: {exhausted}" if exhausted else "")


@pytest.fixture
def flow(project: Path) -> Path:
    (project / "steps.py").write_text(STEPS)
    (project / "flow.yaml").write_text(_pipeline())
    (project / "parallel.yaml").write_text(PARALLEL_CONFIG)
    (project / ".gitignore").write_text("__pycache__/\nran/\nfixed\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "steps"], cwd=project, check=True)
    return project


def _params(project: Path, **values: Any) -> str:
    path = project / "params.yaml"
    path.write_text("".join(f"{key}: {value!r}\n" for key, value in values.items()))
    return "params.yaml"


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "enable_parallel"])
def test_conditional_chooses_and_loop_iterates_until_break(
    flow: Path, run_magnus: Any, parallel: bool
) -> None:
    config = ["-c", "parallel.yaml"] if parallel else []
    result = run_magnus(
        "execute", "-f", "flow.yaml", "-p", _params(flow, size="large"), "--run-id", "r1",
        *config, cwd=flow,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("r1", flow)
    route = log["steps"]["route"]
    assert (route["status"], route["chosen_branch"], route["condition_value"]) == (
        "SUCCESS", "large", "large",
    )  # fmt: skip
    assert list(route["branches"]) == ["route.large"]  # the others never started
    train = log["steps"]["train"]
    # 1, 1+2=3, 3+3=6: done on the third iteration, each its own branch
    assert train["iterations"] == 3
    assert list(train["branches"]) == ["train.0", "train.1", "train.2"]
    for number, name in enumerate(train["branches"]):
        branch = train["branches"][name]
        assert branch["map_variable"] == {"loop_iteration": number}
        grow = branch["steps"][f"{name}.grow"]["attempts"][0]
        assert grow["parameters"]["loop_iteration"] == number
        # each iteration starts with what the one before ended with
        assert grow["parameters"].get("total", 0) == [0, 1, 3][number]
        sides = branch["steps"][f"{name}.sides"]
        assert sorted(sides["branches"]) == [f"{name}.sides.a", f"{name}.sides.b"]
    pids = {
        value
        for name, branch in train["branches"].items()
        for key, value in branch["parameters"].items()
        if key.startswith("side_")
    }
    assert pids  # the parallel branches inside each iteration ran and passed their parameters up
    # the last iteration's parameters flow on, and the conditional's branch's did too
    assert log["parameters"]["total"] == 6 and log["parameters"]["done"] is True
    assert log["parameters"]["summary"] == "large:6"
    assert log["status"] == "SUCCESS"


def test_unmatched_value_takes_default_or_fails_naming_value_and_branches(
    flow: Path, run_magnus: Any
) -> None:
    params = _params(flow, size="medium")
    taken = run_magnus("execute", "-f", "flow.yaml", "-p", params, "--run-id", "d1", cwd=flow)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    route = show_run("d1", flow)["steps"]["route"]
    assert route["chosen_branch"] == "default" and list(route["branches"]) == ["route.default"]

    (flow / "nodefault.yaml").write_text(_pipeline(default=False))
    failed = run_magnus("execute", "-f", "nodefault.yaml", "-p", params, "--run-id", "d2", cwd=flow)
    assert failed.returncode == 1
    log = show_run("d2", flow)
    route = log["steps"]["route"]
    assert route["status"] == "FAIL" and route["branches"] == {}
    assert "'medium'" in route["message"] and "small, large" in route["message"]
    assert "no default" in route["message"]
    assert "train" not in log["steps"] and log["status"] == "FAIL"
    assert "'medium'" in failed.stdout + failed.stderr  # said on the console too


def test_loop_at_max_iterations_fails_or_succeeds_as_told(flow: Path, run_magnus: Any) -> None:
    params = _params(flow, size="small", stop_at=100)
    (flow / "short.yaml").write_text(_pipeline(max_iterations=2))
    failed = run_magnus("execute", "-f", "short.yaml", "-p", params, "--run-id", "m1", cwd=flow)
    assert failed.returncode == 1
    train = show_run("m1", flow)["steps"]["train"]
    assert train["status"] == "FAIL" and train["iterations"] == 2
    assert "max_iterations (2)" in train["message"] and "'done'" in train["message"]

    (flow / "lenient.yaml").write_text(_pipeline(max_iterations=2, exhausted="succeed"))
    fine = run_magnus("execute", "-f", "lenient.yaml", "-p", params, "--run-id", "m2", cwd=flow)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    log = show_run("m2", flow)
    assert log["steps"]["train"]["status"] == "SUCCESS" and log["parameters"]["total"] == 3


FLAKY_LOOP = """
dag:
  start_at: train
  steps:
    train:
      type: loop
      break_on: done
      max_iterations: 5
      branch:
        start_at: flaky
        steps:
          flaky: {type: task, command: steps.flaky, next: success}
          success: {type: success}
          fail: {type: fail}
      next: success
    success: {type: success}
    fail: {type: fail}
"""


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "enable_parallel"])
def test_a_failed_iteration_fails_the_loop_and_retry_resumes_there(
    flow: Path, run_magnus: Any, parallel: bool
) -> None:
    config = ["-c", "parallel.yaml"] if parallel else []
    (flow / "flaky.yaml").write_text(FLAKY_LOOP)
    first = run_magnus("execute", "-f", "flaky.yaml", "--run-id", "f1", *config, cwd=flow)
    assert first.returncode == 1
    train = show_run("f1", flow)["steps"]["train"]
    assert train["status"] == "FAIL" and train["iterations"] == 2
    assert "train.1" in train["message"] and "iteration 1 fails" in str(train)

    (flow / "fixed").write_text("")
    for leftover in (flow / "ran").iterdir():
        leftover.unlink()
    again = run_magnus("retry", "f1", "--run-id", "f2", *config, cwd=flow)
    assert again.returncode == 0, again.stdout + again.stderr
    log = show_run("f2", flow)
    branches = log["steps"]["train"]["branches"]
    assert list(branches) == ["train.0", "train.1", "train.2"]
    reused = branches["train.0"]["steps"]["train.0.flaky"]
    assert reused["mock"] is True and reused["reused_from"] == "f1"
    # iteration 0 was not run again; 1 and 2 ran
    assert sorted(p.name for p in (flow / "ran").iterdir()) == ["flaky-1", "flaky-2"]
    assert log["parameters"] == {"total": 3, "done": True}


CONDITIONAL_AFTER = """
dag:
  start_at: pick
  steps:
    pick: {type: task, command: steps.pick, next: route}
    route:
      type: conditional
      parameter: route
      branches:
        small:
          start_at: small
          steps:
            small: {type: task, command: steps.small, next: success}
            success: {type: success}
            fail: {type: fail}
        large:
          start_at: boom
          steps:
            boom: {type: task, command: steps.flaky, next: success}
            success: {type: success}
            fail: {type: fail}
      next: success
    success: {type: success}
    fail: {type: fail}
"""


def test_retry_keeps_the_choice_unless_the_step_before_ran_again(
    flow: Path, run_magnus: Any
) -> None:
    (flow / "cond.yaml").write_text(CONDITIONAL_AFTER)
    params = _params(flow, size="large", loop_iteration=1)
    first = run_magnus("execute", "-f", "cond.yaml", "-p", params, "--run-id", "c1", cwd=flow)
    assert first.returncode == 1
    assert show_run("c1", flow)["steps"]["route"]["chosen_branch"] == "large"

    # `pick` is reused: the retry takes the branch the original chose, although the value
    # given now would choose another
    (flow / "fixed").write_text("")
    kept = run_magnus(
        "retry", "c1", "-p", _params(flow, size="small", loop_iteration=1), "--run-id", "c2",
        cwd=flow,
    )  # fmt: skip
    assert kept.returncode == 0, kept.stdout + kept.stderr
    route = show_run("c2", flow)["steps"]["route"]
    assert route["chosen_branch"] == "large" and route["condition_value"] == "large"

    # with `pick` run again (--strict: the parameter it consumes changed), its new value decides
    afresh = run_magnus(
        "retry", "c1", "--strict", "-p", _params(flow, size="small", loop_iteration=1),
        "--run-id", "c3", cwd=flow,
    )  # fmt: skip
    assert afresh.returncode == 0, afresh.stdout + afresh.stderr
    log = show_run("c3", flow)
    assert log["steps"]["pick"]["mock"] is False  # ran again
    assert log["steps"]["route"]["chosen_branch"] == "small"
    assert log["parameters"]["result"] == "small"


SDK_SCRIPT = """
from magnus import Conditional, Loop, Pipeline, PythonTask

def branch(name):
    return Pipeline(steps=[PythonTask(name=name, function=getattr(steps, name), terminate_with_success=True)])

import steps

route = Conditional(
    name="route", parameter="route",
    branches={"small": branch("small"), "large": branch("large")},
    default=branch("other"),
)
train = Loop(name="train", branch=branch("grow"), break_on="done", max_iterations=4)
pick = PythonTask(name="pick", function=steps.pick)
after = PythonTask(name="after", function=steps.after, terminate_with_success=True)
pipeline = Pipeline(steps=[pick, route, train, after])
pipeline.execute(parameters_file="params.yaml", run_id="sdk1")
"""


def test_sdk_conditional_and_loop(flow: Path) -> None:
    _params(flow, size="small")
    (flow / "script.py").write_text(SDK_SCRIPT)
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=flow, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("sdk1", flow)
    assert log["steps"]["route"]["chosen_branch"] == "small"
    assert log["steps"]["train"]["iterations"] == 3
    assert log["parameters"]["summary"] == "small:6"
    assert log["run_config"]["dag"]["steps"]["train"]["type"] == "loop"


def test_report_and_dag_draw_conditional_and_loop(flow: Path, run_magnus: Any) -> None:
    import re

    from browser import rendered_dom

    params = _params(flow, size="large")
    assert run_magnus("execute", "-f", "flow.yaml", "-p", params, "--run-id", "p1", cwd=flow)
    made = run_magnus("report", "p1", cwd=flow)
    assert made.returncode == 0, made.stderr
    dom = rendered_dom(flow / made.stdout.strip())
    drawn = {
        step[1]: (status[1] if status else "")
        for tag in re.findall(r'<g class="step"[^>]*>', dom)
        if (step := re.search(r'data-step="([^"]*)"', tag))
        for status in [re.search(r'data-status="([^"]*)"', tag)]
    }
    assert drawn["route"] == drawn["train"] == drawn["after"] == "SUCCESS"
    assert drawn["route.large.large"] == "SUCCESS"
    assert drawn["route.small.small"] == ""  # drawn, never run
    assert drawn["route.default.other"] == ""  # the default branch is drawn too

    picture = run_magnus("dag", "-f", "flow.yaml", cwd=flow)
    assert picture.returncode == 0, picture.stderr
    assert '["default"]' in picture.stdout and '["each iteration"]' in picture.stdout
    assert "train (loop)" in picture.stdout and "route (conditional)" in picture.stdout

    shown = run_magnus("runs", "show", "p1", cwd=flow)
    assert 'chose large by value "large"' in shown.stdout
    assert "iterations 3" in shown.stdout


BAD = """
dag:
  start_at: c
  steps:
    c:
      type: conditional
      parameter: x
      branches:
        default: {start_at: a, steps: {a: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
      next: l
    l:
      type: loop
      break_on: y
      max_iterations: 0
      on_exhausted: maybe
      branch: {start_at: a, steps: {a: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
      next: outer
    outer:
      type: loop
      break_on: y
      max_iterations: 2
      branch:
        start_at: inner
        steps:
          inner:
            type: loop
            break_on: y
            max_iterations: 2
            branch: {start_at: a, steps: {a: {type: stub, next: success}, success: {type: success}, fail: {type: fail}}}
            next: success
          success: {type: success}
          fail: {type: fail}
      next: success
    success: {type: success}
    fail: {type: fail}
"""


def test_bad_definitions_name_step_and_key(flow: Path, run_magnus: Any) -> None:
    (flow / "bad.yaml").write_text(BAD)
    result = run_magnus("execute", "-f", "bad.yaml", cwd=flow)
    assert result.returncode == 2
    said = result.stderr
    assert "step 'c'" in said and "'default' is the default branch" in said
    assert "step 'l'" in said and "'max_iterations'" in said and "'on_exhausted'" in said
    assert not (flow / ".run_log_store").exists()  # nothing ran

    nested = BAD[BAD.index("    outer:") :]
    (flow / "nested.yaml").write_text("dag:\n  start_at: outer\n  steps:\n" + nested)
    result = run_magnus("execute", "-f", "nested.yaml", cwd=flow)
    assert result.returncode == 2
    assert "step 'outer.map_variable_placeholder.inner': 'loop_iteration' is already" in (
        result.stderr
    )


MOCKED = """
executor:
  type: mocked
  config:
    patches:
      train.2.grow:
        command_type: shell
        command: export MAGNUS_PRM_done=true
"""


def test_mocked_run_walks_the_chosen_branch_and_iterates_until_a_patch_breaks(
    flow: Path, run_magnus: Any
) -> None:
    (flow / "mocked.yaml").write_text(MOCKED)
    params = _params(flow, size="small", route="small")
    result = run_magnus(
        "execute", "-f", "flow.yaml", "-c", "mocked.yaml", "-p", params, "--run-id", "mk",
        cwd=flow,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("mk", flow)
    assert log["steps"]["pick"]["mock"] is True
    assert log["steps"]["route"]["chosen_branch"] == "small"
    train = log["steps"]["train"]
    # iterations 0 and 1 are mocked (nothing sets done); the patched step in 2 breaks the loop
    assert train["iterations"] == 3 and train["status"] == "SUCCESS"
    assert train["branches"]["train.1"]["steps"]["train.1.grow"]["mock"] is True
    assert train["branches"]["train.2"]["steps"]["train.2.grow"]["mock"] is False


NESTED = """
dag:
  start_at: make
  steps:
    make: {type: task, command: nested.make, next: each}
    each:
      type: map
      iterate_on: items
      iterate_as: item
      branch:
        start_at: lp
        steps:
          lp:
            type: loop
            break_on: done
            max_iterations: 4
            branch:
              start_at: c
              steps:
                c:
                  type: conditional
                  parameter: kind
                  branches:
                    even: {start_at: e, steps: {e: {type: task, command: nested.even, next: success},
                           success: {type: success}, fail: {type: fail}}}
                  default: {start_at: o, steps: {o: {type: task, command: nested.odd, next: success},
                            success: {type: success}, fail: {type: fail}}}
                  next: success
                success: {type: success}
                fail: {type: fail}
            next: success
          success: {type: success}
          fail: {type: fail}
      next: success
    success: {type: success}
    fail: {type: fail}
"""

NESTED_STEPS = """
def make():
    return {"items": [1, 2], "kind": "even"}


def even(item, loop_iteration, n: int = 0):
    return {"n": n + item, "kind": "odd", "done": loop_iteration >= 2}


def odd(item, loop_iteration, n: int = 0):
    return {"n": n + 100, "kind": "even", "done": loop_iteration >= 2}
"""


def test_a_conditional_in_a_loop_in_a_map_in_parallel_processes(
    flow: Path, run_magnus: Any
) -> None:
    (flow / "nested.py").write_text(NESTED_STEPS)
    (flow / "nested.yaml").write_text(NESTED)
    result = run_magnus(
        "execute", "-f", "nested.yaml", "-c", "parallel.yaml", "--run-id", "n1", cwd=flow
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = show_run("n1", flow)
    assert log["parameters"]["n"] == [102, 104]  # item, +100, +item: one loop per element
    for element in ("each.1", "each.2"):
        loop = log["steps"]["each"]["branches"][element]["steps"][f"{element}.lp"]
        assert loop["iterations"] == 3
        chosen = [
            iteration["steps"][f"{name}.c"]["chosen_branch"]
            for name, iteration in loop["branches"].items()
        ]
        # each iteration reads `kind` as the one before left it
        assert chosen == ["even", "default", "even"]
