"""``magnus explain``: why each step of a run ran or was reused, in words and as JSON."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import run_magnus

pytestmark = pytest.mark.e2e

HELPERS = """
SCALE = 2


def double(value):
    return value * SCALE
"""

FEATURES = """
from pathlib import Path

from helpers import double


def clean(lr: int):
    Path("data").mkdir(exist_ok=True)
    Path("data/out.txt").write_text(str(double(lr)))
"""

CONSUMER = """
from pathlib import Path


def use():
    return {"used": Path("data/out.txt").read_text()}
"""

PIPELINE = """
dag:
  start_at: clean
  steps:
    clean: {type: task, command: features.clean, catalog: {put: [data/out.txt]}, next: shell}
    shell: {type: task, command_type: shell, command: echo hello, next: use}
    use: {type: task, command: consumer.use, catalog: {get: [data/out.txt]}, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _execute(project: Path, run_id: str, *extra: str) -> None:
    result = run_magnus(
        "execute", "-f", "pipeline.yaml", "-p", "params.yaml", "--run-id", run_id, *extra,
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _explain(project: Path, *args: str) -> str:
    result = run_magnus("explain", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def explained(tmp_path: Path) -> Path:
    """A project of three steps -- a python step calling a helper module, a shell step, a step
    getting what the first put -- run once as ``r1``."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "features.py").write_text(FEATURES)
    (tmp_path / "consumer.py").write_text(CONSUMER)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "params.yaml").write_text("lr: 2\n")
    _execute(tmp_path, "r1")
    return tmp_path


def test_an_edited_helper_function_is_named_and_against_chooses_the_baseline(
    explained: Path,
) -> None:
    # The value it returns stays the same: only the step calling it has new code.
    _edit(explained / "helpers.py", "value * SCALE", "SCALE * value")
    _execute(explained, "r2")
    (explained / "params.yaml").write_text("lr: 5\n")
    _execute(explained, "r3")
    assert _explain(explained, "r2") == (
        "clean: ran (compared with run r1)\n"
        "  `double()` in helpers.py changed\n"
        "shell: ran (compared with run r1)\n"
        "  reuse was off for this step\n"
        "use: ran (compared with run r1)\n"
        "  reuse was off for this step\n"
    )
    # The latest earlier run by default, the run named otherwise.
    assert _explain(explained, "r3", "--step", "clean") == (
        "clean: ran (compared with run r2)\n  parameter lr 2 → 5\n"
    )
    assert _explain(explained, "r3", "--step", "clean", "--against", "r1") == (
        "clean: ran (compared with run r1)\n"
        "  `double()` in helpers.py changed\n"
        "  parameter lr 2 → 5\n"
    )


def test_a_constant_a_parameter_a_command_and_the_data_downstream(explained: Path) -> None:
    _edit(explained / "helpers.py", "SCALE = 2", "SCALE = 3")
    (explained / "params.yaml").write_text("lr: 5\n")
    _edit(explained / "pipeline.yaml", "echo hello", "echo bye")
    _execute(explained, "r2")
    before, after = _sha256("4"), _sha256("15")
    assert _explain(explained, "r2") == (
        "clean: ran (compared with run r1)\n"
        "  module level of helpers.py changed\n"
        "  parameter lr 2 → 5\n"
        "shell: ran (compared with run r1)\n"
        "  command 'echo hello' → 'echo bye'\n"
        "  parameter lr 2 → 5\n"
        "use: ran (compared with run r1)\n"
        f"  data/out.txt changed (sha256 {before[:8]}… → {after[:8]}…)\n"
    )

    explanations = json.loads(_explain(explained, "r2", "--json"))
    assert [e["step"] for e in explanations] == ["clean", "shell", "use"]
    clean, shell, use = explanations
    assert len(clean.pop("fingerprint")) == 64
    assert clean == {
        "step": "clean",
        "decision": "ran",
        "reasons": ["module level of helpers.py changed", "parameter lr 2 → 5"],
        "baseline": {"run_id": "r1", "step": "clean"},
        "reused_from": None,
        "not_reused": None,
        "changed_parts": ["code", "parameters"],
        "changes": {
            "code": ["module level of helpers.py changed"],
            "definition": [],
            "parameters": [{"name": "lr", "change": "changed", "before": 2, "after": 5}],
            "map_variables": [],
            "inputs": [],
            "environment": [],
        },
    }
    # The command is named once, by the code part; the definition part adds nothing.
    assert shell["changed_parts"] == ["code", "definition", "parameters"]
    assert shell["changes"]["code"] == ["command 'echo hello' → 'echo bye'"]
    assert shell["changes"]["definition"] == []
    assert use["changed_parts"] == ["inputs"]
    assert use["changes"]["inputs"] == [
        {"name": "data/out.txt", "change": "changed", "before": before, "after": after}
    ]


def test_reused_steps_name_their_origin(explained: Path) -> None:
    _execute(explained, "r2", "--reuse")
    explanations = json.loads(_explain(explained, "r2", "--json"))
    assert [(e["step"], e["decision"], e["baseline"]) for e in explanations] == [
        ("clean", "reused", None),
        ("shell", "reused", None),
        ("use", "reused", None),
    ]
    assert [e["reused_from"] for e in explanations] == [
        {"run_id": "r1", "step": name} for name in ("clean", "shell", "use")
    ]
    key = explanations[1]["fingerprint"]
    assert _explain(explained, "r2", "--step", "shell") == (
        f"shell: reused\n  reused from run r1 step shell (fingerprint {key[:8]}…)\n"
    )


def test_a_result_whose_data_is_gone_is_not_reused_and_says_why(explained: Path) -> None:
    shutil.rmtree(explained / ".catalog" / "r1")
    _execute(explained, "r2", "--reuse")
    lines = _explain(explained, "r2").splitlines()
    assert lines[0] == "clean: ran (compared with run r1)"
    assert lines[1].startswith(
        "  not reused: the result of run r1 step clean is incomplete: data/out.txt cannot be "
        "copied ("
    )
    # The step ran again and put the same data: the next steps are reused as before.
    assert [line.split(" (fingerprint")[0] for line in lines[2:]] == [
        "shell: reused",
        "  reused from run r1 step shell",
        "use: reused",
        "  reused from run r1 step use",
    ]


def test_a_failed_step_an_unknown_run_and_an_unknown_step(explained: Path) -> None:
    (explained / "failing.yaml").write_text(
        "dag:\n  start_at: boom\n  steps:\n"
        "    boom: {type: task, command_type: shell, command: exit 3, next: success}\n"
        "    success: {type: success}\n    fail: {type: fail}\n"
    )
    failing = run_magnus("execute", "-f", "failing.yaml", "--run-id", "f1", cwd=explained)
    assert failing.returncode == 1
    assert _explain(explained, "f1") == (
        "boom: failed\n"
        "  failed: Command failed with exit status 3\n"
        "  no earlier run of this step to compare with\n"
    )

    unknown = run_magnus("explain", "nope", cwd=explained)
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "Error: No run log with id 'nope' in the run log store at .run_log_store/nope"
    ]
    missing = run_magnus("explain", "r1", "--step", "nothing", cwd=explained)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["Error: No step log 'nothing' in run 'r1'"]
