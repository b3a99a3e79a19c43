"""The fingerprint of a step attempt: what changes it, what does not, and that every attempt has one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import run_magnus

from magnus.fingerprints import code_digest, definition_digest
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.models import StepAttempt

PART_NAMES = ("code", "definition", "parameters", "inputs", "environment")

STEPS = '''"""The project's steps."""

from proj import consts
from proj.helpers import clean


def use(lr: float) -> dict:
    """Read the data the catalog got."""
    with open("data/in.txt") as handle:
        return {"score": len(clean(handle.read())) * lr * consts.SCALE}
'''

HELPERS = '''"""Helpers the steps import."""


def clean(text: str) -> str:
    return text.strip()


def unused() -> int:
    return 1
'''

CONSTS = "SCALE = 2\n"

PIPELINE = """
dag:
  start_at: copy
  steps:
    copy:
      type: task
      command_type: shell
      command: mkdir -p data && cp source.txt data/in.txt
      catalog:
        put: [data/in.txt]
      next: use
    use:
      type: task
      command: proj.steps.use
      catalog:
        get: [data/in.txt]
      next: success
    success:
      type: success
    fail:
      type: fail
"""


def _write(path: Path, text: str) -> None:
    """Write ``text``, moving the modification time on: two edits within the file system's
    clock tick must still look changed, as two saves by a person always do.
    """
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def steps_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose step function imports a helper module and a constants module."""
    package = tmp_path / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _write(package / "steps.py", STEPS)
    _write(package / "helpers.py", HELPERS)
    _write(package / "consts.py", CONSTS)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "source.txt").write_text("some words\n")
    (tmp_path / "parameters.yaml").write_text("lr: 0.1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _code(project: Path) -> str:
    return code_digest("python", "proj.steps.use", {})


def test_comments_docstrings_and_formatting_do_not_change_the_code(steps_project: Path) -> None:
    before = _code(steps_project)
    helpers = steps_project / "proj" / "helpers.py"
    _write(
        helpers,
        HELPERS.replace('"""Helpers the steps import."""', '"""Reworded."""  # a comment').replace(
            "return text.strip()", "# why\n    return (\n        text.strip()\n    )"
        ),
    )
    assert _code(steps_project) == before


def test_a_helper_in_another_module_changes_the_code(steps_project: Path) -> None:
    before = _code(steps_project)
    _write(steps_project / "proj" / "helpers.py", HELPERS.replace("strip()", "lower()"))
    assert _code(steps_project) != before


def test_a_constant_changes_the_code(steps_project: Path) -> None:
    before = _code(steps_project)
    _write(steps_project / "proj" / "consts.py", "SCALE = 3\n")
    assert _code(steps_project) != before


def test_an_installed_module_is_not_read(
    steps_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Installed code counts by its distribution's version, in the environment part, even when
    # its virtualenv lies in the project.
    installed = steps_project / "venv" / "lib" / "site-packages"
    (installed / "lib1").mkdir(parents=True)
    _write(installed / "lib1" / "__init__.py", "X = 1\n")
    monkeypatch.syspath_prepend(str(installed))
    _write(steps_project / "proj" / "steps.py", "import lib1\n" + STEPS)
    before = _code(steps_project)
    _write(installed / "lib1" / "__init__.py", "X = 2\n")
    assert _code(steps_project) == before


def test_the_next_step_does_not_change_the_definition_but_a_catalog_pattern_does() -> None:
    step = {"command": "a.b", "command_type": "python", "next": "x", "catalog": {"get": ["a"]}}
    assert definition_digest(step) == definition_digest({**step, "next": "y", "on_failure": "z"})
    assert definition_digest(step) != definition_digest({**step, "catalog": {"get": ["b"]}})


def test_a_shell_command_changes_the_code() -> None:
    assert code_digest("shell", "echo a", {}) != code_digest("shell", "echo b", {})


def _notebook(path: Path, code: str, markdown: str) -> None:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": [markdown]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": [code]},
    ]
    _write(path, json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))


def test_a_notebook_code_cell_changes_the_code_a_markdown_cell_does_not(
    steps_project: Path,
) -> None:
    notebook = steps_project / "work.ipynb"
    _notebook(notebook, "x = 1", "# Title")
    before = code_digest("notebook", "work.ipynb", {})
    _notebook(notebook, "x = 1", "# Another title")
    assert code_digest("notebook", "work.ipynb", {}) == before
    _notebook(notebook, "x = 2", "# Another title")
    assert code_digest("notebook", "work.ipynb", {}) != before


def test_a_notebook_counts_the_project_modules_it_imports(steps_project: Path) -> None:
    _notebook(steps_project / "work.ipynb", "%matplotlib inline", "")
    _notebook(steps_project / "uses.ipynb", "from proj.helpers import clean", "")
    before = code_digest("notebook", "uses.ipynb", {}), code_digest("notebook", "work.ipynb", {})
    _write(steps_project / "proj" / "helpers.py", HELPERS.replace("strip()", "lower()"))
    after = code_digest("notebook", "uses.ipynb", {}), code_digest("notebook", "work.ipynb", {})
    assert after[0] != before[0]
    assert after[1] == before[1]


def test_an_attempt_of_an_older_log_has_no_fingerprint_and_writes_none() -> None:
    attempt = StepAttempt.model_validate({"attempt_number": 1, "status": "SUCCESS"})
    assert attempt.fingerprint is None
    assert "fingerprint" not in attempt.model_dump(mode="json")


def _fingerprints(run_id: str, cwd: Path) -> dict[str, dict[str, Any]]:
    store = ChunkedFileSystemRunLogStore(log_folder=str(cwd / ".run_log_store"))
    steps = store.get_run_log_by_id(run_id).to_json_dict()["steps"]
    return {name: steps[name]["attempts"][-1]["fingerprint"] for name in ("copy", "use")}


def _run(project: Path, run_id: str) -> dict[str, dict[str, Any]]:
    result = run_magnus(
        "execute", "-f", "pipeline.yaml", "-p", "parameters.yaml", "--run-id", run_id, cwd=project
    )
    assert result.returncode == 0, result.stderr
    return _fingerprints(run_id, project)


def test_runs_record_fingerprints_that_change_with_inputs_and_parameters_only(
    steps_project: Path,
) -> None:
    first = _run(steps_project, "first")
    for fingerprint in first.values():
        assert all(len(fingerprint[part]) == 64 for part in ("key", *PART_NAMES))
    assert first["copy"]["key"] != first["use"]["key"]
    assert _run(steps_project, "again") == first

    (steps_project / "source.txt").write_text("other words\n")
    (steps_project / "parameters.yaml").write_text("lr: 0.2\n")
    changed = _run(steps_project, "changed")
    # The copying step reads its file outside the catalog and takes the whole scope, as every
    # shell step does: only its parameters differ.
    assert differing_parts(first["copy"], changed["copy"]) == {"parameters"}
    assert differing_parts(first["use"], changed["use"]) == {"inputs", "parameters"}
    assert changed["use"]["key"] != first["use"]["key"]


def differing_parts(one: dict[str, Any], other: dict[str, Any]) -> set[str]:
    return {part for part in PART_NAMES if one[part] != other[part]}
