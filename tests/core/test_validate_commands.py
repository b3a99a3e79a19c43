"""``magnus validate`` checks the commands a pipeline runs: python functions and the arguments
they need, notebooks and shell scripts. What certainly fails is an error (exit 2, one message
naming the step and the command); what may fail is a ``warning:`` line (exit 0).

The corpus runs the command line in this process (fast), each case with modules of its own
name; ``--no-import`` and the examples run ``magnus`` as a real subprocess.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from helpers import run_magnus

from magnus.cli import cli


def _pipeline(steps: dict[str, Any]) -> str:
    """A pipeline of ``steps`` run in order (unless a step says ``next``), then success."""
    names = list(steps)
    chained = {
        name: {"next": names[i + 1] if i + 1 < len(names) else "success", **step}
        for i, (name, step) in enumerate(steps.items())
    }
    all_steps = {**chained, "success": {"type": "success"}, "fail": {"type": "fail"}}
    return yaml.safe_dump({"dag": {"start_at": names[0], "steps": all_steps}})


def _python(command: str) -> dict[str, Any]:
    return {"type": "task", "command": command}


def _shell(command: str) -> dict[str, Any]:
    return {"type": "task", "command_type": "shell", "command": command}


def _notebook(command: str) -> dict[str, Any]:
    return {"type": "task", "command_type": "notebook", "command": command}


FUNCTIONS = """
def prepare(rows: int = 3) -> dict:
    return {"rows": rows}


def train(rows: int, rate: float = 0.1) -> dict:
    return {"score": rows * rate}


def only_positional(x, /):
    return None
"""


@dataclass
class Case:
    """A pipeline (``{module}`` stands for the case's own module), what validate must say."""

    id: str
    steps: dict[str, Any]
    code: int
    #: fragments of the one error line (exit 2) or of the warning lines (exit 0)
    says: list[str]
    args: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: fragments that must not appear in stderr
    silent_on: list[str] = field(default_factory=list)


CASES = [
    Case(
        "missing-module",
        {"a": _python("nowhere_at_all.prepare")},
        2,
        ["step 'a'", "'nowhere_at_all.prepare'", "Could not import module 'nowhere_at_all'"],
    ),
    Case(
        "module-fails-on-import",
        {"a": _python("{module}_broken.prepare")},
        2,
        ["step 'a'", "_broken", "cannot start"],
        files={"{module}_broken.py": "raise RuntimeError('cannot start')\n"},
    ),
    Case(
        "module-exits-on-import",
        {"a": _python("{module}_exits.prepare")},
        2,
        ["step 'a'", "_exits.prepare", "sys.exit(3)"],
        files={"{module}_exits.py": "import sys\n\nsys.exit(3)\n"},
    ),
    Case(
        "missing-function",
        {"a": _python("{module}.evaluate")},
        2,
        ["step 'a'", "has no function 'evaluate'"],
        silent_on=["did you mean"],
    ),
    Case(
        "typo-in-function",
        {"a": _python("{module}.prepaer")},
        2,
        ["step 'a'", "'{module}.prepaer'", "has no function 'prepaer'", "did you mean 'prepare'"],
    ),
    Case(
        "positional-only-argument",
        {"a": _python("{module}.only_positional")},
        2,
        ["step 'a'", "positional-only parameter 'x'"],
    ),
    Case(
        "argument-nobody-provides",
        {"a": _python("{module}.train")},
        0,
        ["warning: step 'a'", "argument 'rows'", "no step before it can set it"],
        silent_on=["'rate'"],
    ),
    Case(
        "argument-in-parameters-file",
        {"a": _python("{module}.train")},
        0,
        [],
        args=["-p", "params.yaml"],
        files={"params.yaml": "rows: 10\n"},
        silent_on=["warning"],
    ),
    Case(
        "argument-in-environment",
        {"a": _python("{module}.train")},
        0,
        [],
        env={"MAGNUS_PRM_rows": "10"},
        silent_on=["warning"],
    ),
    Case(
        "argument-an-earlier-step-may-set",
        {"a": _shell("export MAGNUS_PRM_rows=4"), "b": _python("{module}.train")},
        0,
        [],
        silent_on=["warning"],
    ),
    Case(
        "argument-after-a-failed-setter",
        {
            "a": {**_shell("export MAGNUS_PRM_rows=4"), "next": "success", "on_failure": "b"},
            "b": _python("{module}.train"),
        },
        0,
        ["warning: step 'b'", "argument 'rows'"],
    ),
    Case(
        "argument-a-stub-cannot-set",
        {"a": {"type": "stub"}, "b": _python("{module}.train")},
        0,
        ["warning: step 'b'", "argument 'rows'"],
    ),
    Case(
        "argument-bound-by-the-map-variable",
        {
            "fan": {
                "type": "map",
                "iterate_on": "chunks",
                "iterate_as": "rows",
                "branch": {
                    "start_at": "fit",
                    "steps": {
                        "fit": {**_python("{module}.train"), "next": "success"},
                        "success": {"type": "success"},
                        "fail": {"type": "fail"},
                    },
                },
            }
        },
        0,
        ["warning: step 'fan': iterate_on 'chunks' is not an initial parameter"],
        silent_on=["argument 'rows'"],
    ),
    Case(
        "initial-value-of-the-wrong-type",
        {"a": _python("{module}.train")},
        0,
        ["warning: step 'a'", "parameter 'rows'", "expects int"],
        args=["-p", "params.yaml"],
        files={"params.yaml": "rows: many\n"},
    ),
    Case(
        "notebook-missing",
        {"a": _notebook("notebooks/absent.ipynb")},
        2,
        ["step 'a'", "'notebooks/absent.ipynb'", "does not exist"],
    ),
    Case(
        "shell-script-missing",
        {"a": _shell("./scripts/absent.sh --fast")},
        2,
        ["step 'a'", "./scripts/absent.sh", "does not exist"],
    ),
    Case(
        "shell-script-not-executable",
        {"a": _shell("MODE=fast scripts/run.sh; echo done")},
        0,
        ["warning: step 'a'", "scripts/run.sh is not executable"],
        files={"scripts/run.sh": "#!/bin/sh\necho running\n"},
    ),
    Case(
        "shell-commands-are-not-paths",
        {"a": _shell("echo hello > out/x.txt"), "b": _shell("$HOME/bin/tool --x")},
        0,
        [],
        silent_on=["warning", "does not exist"],
    ),
    Case(
        "several-problems-at-once",
        {"a": _python("{module}.absent"), "b": _shell("./gone.sh")},
        2,
        ["2 problems", "step 'a'", "step 'b'", "./gone.sh"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_validate_checks_commands(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "steps_" + case.id.replace("-", "_")  # a module of its own: imports are cached
    (tmp_path / f"{module}.py").write_text(FUNCTIONS)
    for name, content in case.files.items():
        path = tmp_path / name.replace("{module}", module)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "p.yaml").write_text(_pipeline(case.steps).replace("{module}", module))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in [k for k in os.environ if k.startswith("MAGNUS_")]:
        monkeypatch.delenv(key)

    result = CliRunner().invoke(cli, ["validate", "-f", "p.yaml", *case.args], env=case.env)

    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == case.code, result.stderr
    lines = result.stderr.strip().splitlines()
    if case.code == 2:
        assert lines[0].startswith("Error: "), result.stderr
        assert len(lines) == 1 or "problems" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert "is valid" in result.stdout
    for fragment in case.says:
        assert fragment.replace("{module}", module) in result.stderr, (fragment, result.stderr)
    for fragment in case.silent_on:
        assert fragment not in result.stderr, (fragment, result.stderr)


def test_no_import_skips_imports_but_checks_files(tmp_path: Path) -> None:
    (tmp_path / "only_in_the_image.py").write_text("import a_library_this_image_lacks\n")
    steps = {"a": _python("only_in_the_image.train"), "b": _notebook("analysis.ipynb")}
    (tmp_path / "p.yaml").write_text(_pipeline(steps))

    imported = run_magnus("validate", "-f", "p.yaml", cwd=tmp_path)
    assert imported.returncode == 2
    assert "a_library_this_image_lacks" in imported.stderr and "analysis.ipynb" in imported.stderr

    missing_notebook = run_magnus("validate", "-f", "p.yaml", "--no-import", cwd=tmp_path)
    assert missing_notebook.returncode == 2, missing_notebook.stderr
    assert "analysis.ipynb" in missing_notebook.stderr
    assert "a_library_this_image_lacks" not in missing_notebook.stderr

    shutil.copy(Path(__file__).parent / "notebooks" / _any_notebook(), tmp_path / "analysis.ipynb")
    passed = run_magnus("validate", "-f", "p.yaml", "--no-import", cwd=tmp_path)
    assert passed.returncode == 0, passed.stderr
    assert "is valid" in passed.stdout and "warning" not in passed.stderr


def _any_notebook() -> str:
    return sorted(p.name for p in (Path(__file__).parent / "notebooks").glob("*.ipynb"))[0]


#: what an example pipeline needs besides itself (its header comment says so)
EXAMPLE_ARGS = {
    "mocked.yaml": ["-c", "examples/configs/mocked.yaml"],
    "parallel.yaml": ["-p", "examples/parameters.yaml", "-c", "examples/configs/parallel.yaml"],
    "python-tasks.yaml": ["-p", "examples/parameters.yaml"],
}


def test_every_example_validates_without_warnings(project: Path) -> None:
    pipelines = sorted(p.name for p in (project / "examples").glob("*.yaml"))
    pipelines.remove("parameters.yaml")
    assert set(EXAMPLE_ARGS) <= set(pipelines)
    for name in pipelines:
        args = EXAMPLE_ARGS.get(name, [])
        result = run_magnus("validate", "-f", f"examples/{name}", *args, cwd=project)
        assert result.returncode == 0, (name, result.stderr)
        assert "warning" not in result.stderr, (name, result.stderr)
