"""What a run prints as it goes: numbered steps, a map's progress, and times in `runs show`."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from helpers import run_magnus

STEPS = """
dag:
  start_at: first
  steps:
    first: {type: stub, next: second}
    second: {type: stub, next: third}
    third: {type: stub, next: success}
    success: {type: success}
    fail: {type: fail}
"""

MAP = """
dag:
  start_at: make
  steps:
    make: {type: task, command: elements.make, next: fan}
    fan:
      type: map
      iterate_on: items
      iterate_as: item
      next: success
      branch:
        start_at: work
        steps:
          work: {type: stub, next: success}
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
"""


def _map_project(tmp_path: Path) -> Path:
    (tmp_path / "elements.py").write_text("def make():\n    return {'items': list(range(200))}\n")
    (tmp_path / "map.yaml").write_text(MAP)
    return tmp_path


def _under_a_terminal(cwd: Path, *args: str, env: dict[str, str]) -> str:
    """Run magnus with a pseudo-terminal as its output; return all it wrote."""
    main, secondary = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    full_env.update(env, TERM="xterm", PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-m", "magnus.cli", *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


def test_piped_steps_are_numbered_and_runs_show_gives_zones(tmp_path: Path) -> None:
    (tmp_path / "steps.yaml").write_text(STEPS)

    result = run_magnus("execute", "-f", "steps.yaml", "--run-id", "counted", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for number, name in enumerate(("first", "second", "third"), start=1):
        assert f"[{number}/3] ▶ {name}" in lines
        assert any(re.fullmatch(rf"\[{number}/3\] ✔ {name} \d+\.\d\ds", line) for line in lines)
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout

    shown = run_magnus("runs", "show", "counted", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    # the run's header and each attempt: a duration, then a start time with its zone's offset
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d"
    assert re.search(rf"counted SUCCESS \d+\.\d\ds, started {when}", shown.stdout)
    attempts = re.findall(rf"attempt 1 SUCCESS \d+\.\d\ds, started {when}", shown.stdout)
    assert len(attempts) == 4  # the three stubs and the success step


def test_a_piped_map_prints_a_line_per_tenth_not_per_element(tmp_path: Path) -> None:
    project = _map_project(tmp_path)

    result = run_magnus("execute", "-f", "map.yaml", "--run-id", "piped", cwd=project)

    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stdout.splitlines() if "/200 elements" in line]
    assert 1 <= len(progress) <= 12
    assert progress[-1].strip() == "fan [####################] 200/200 elements"
    assert "fan.0.work" not in result.stdout  # the elements' steps are summarised
    assert "[2/2] ✔ fan" in result.stdout
    assert "\r" not in result.stdout and "\x1b[" not in result.stdout


def test_a_terminal_gets_a_bar_redrawn_in_place_and_no_color_keeps_it_plain(
    tmp_path: Path,
) -> None:
    project = _map_project(tmp_path)

    out = _under_a_terminal(
        project, "execute", "-f", "map.yaml", "--run-id", "live", env={"NO_COLOR": "1"}
    )

    assert "\rfan [####################] 200/200 elements" in out
    assert out.count("\rfan [") >= 2  # drawn empty, then redrawn as elements end
    assert "[2/2] ✔ fan" in out
    assert "\x1b[" not in out  # NO_COLOR: not a colour code, and the bar needs none


COMPOSITE_HOOKS = """
import json
import os

from magnus import hookimpl


def _write(record):
    with open("composite-hooks.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(record, pid=os.getpid())) + "\\n")


@hookimpl
def before_composite(step_log, branches):
    _write({"hook": "before_composite", "step": step_log.internal_name, "branches": branches})


@hookimpl
def after_branch(branch_name, status):
    _write({"hook": "after_branch", "branch": branch_name, "status": status})


@hookimpl
def after_composite(step_log):
    _write({"hook": "after_composite", "step": step_log.internal_name, "status": step_log.status})
"""


def test_parallel_branches_are_counted_by_the_process_that_started_them(tmp_path: Path) -> None:
    import json

    (tmp_path / "elements.py").write_text(
        "def make():\n    return {'items': [0, 1, 2]}\n\n\n"
        "def work(item):\n    if item == 1:\n        raise ValueError('one')\n"
    )
    (tmp_path / "map.yaml").write_text(
        MAP.replace(
            "work: {type: stub, next: success}",
            "work: {type: task, command: elements.work, next: success}",
        )
    )
    (tmp_path / "parallel.yaml").write_text(
        "executor:\n  type: local\n  config:\n    enable_parallel: true\n"
    )
    (tmp_path / "composite_hooks.py").write_text(COMPOSITE_HOOKS)

    result = run_magnus(
        "execute",
        "-f",
        "map.yaml",
        "-c",
        "parallel.yaml",
        "--run-id",
        "par",
        cwd=tmp_path,
        env={"MAGNUS_PLUGINS": "composite_hooks"},
    )

    assert result.returncode == 1
    assert "fan [####################] 3/3 elements, 1 failed" in result.stdout
    assert "[2/2] ✘ fan" in result.stdout
    # The branches' processes print their failures only: the bar speaks for the rest.
    assert "✘ fan.1.work" in result.stdout and "one" in result.stdout
    for quiet in ("▶ fan.0.work", "✔ fan.0.work", "✔ fan.2.work", "▶ fan.1.work"):
        assert quiet not in result.stdout, result.stdout
    seen = [
        json.loads(line) for line in (tmp_path / "composite-hooks.jsonl").read_text().splitlines()
    ]
    parent = {record["pid"] for record in seen if record["hook"] == "before_composite"}
    assert len(parent) == 1  # the parent heard it all; the children ran no composite
    assert [r["hook"] for r in seen] == ["before_composite"] + ["after_branch"] * 3 + [
        "after_composite"
    ]
    assert {r["pid"] for r in seen} == parent
    assert seen[0]["branches"] == 3
    assert sorted((r["branch"], r["status"]) for r in seen[1:4]) == [
        ("fan.0", "SUCCESS"),
        ("fan.1", "FAIL"),
        ("fan.2", "SUCCESS"),
    ]
    assert seen[-1] == {
        "hook": "after_composite",
        "step": "fan",
        "status": "FAIL",
        "pid": seen[0]["pid"],
    }
