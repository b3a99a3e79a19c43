"""The examples render to the committed golden workflows, byte for byte.

Regenerate after an intended change with ``MAGNUS_UPDATE_GOLDEN=1 pytest tests/executor_argo``
and review the diff like any other code change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_helpers import (
    CONFIGS,
    GOLDEN,
    REPO,
    prepare_run,
    schema_errors,
    validator_for_kind,
)

# Read at import: the suite's autouse fixture removes every MAGNUS_* variable from each test.
UPDATE = os.environ.get("MAGNUS_UPDATE_GOLDEN") == "1"
CONFIG = str((CONFIGS / "argo.yaml").relative_to(REPO))
#: every operator option (a CronWorkflow), globally and through overrides
OPERATOR = str((CONFIGS / "argo-operator.yaml").relative_to(REPO))

# (golden name, pipeline, parameters file, configuration), paths relative to the repository root
CASES = [
    ("python-tasks", "examples/python-tasks.yaml", "examples/parameters.yaml", CONFIG),
    ("shell-and-catalog", "examples/shell-and-catalog.yaml", "", CONFIG),
    ("on-failure", "examples/on-failure.yaml", "", CONFIG),
    ("map", "examples/map.yaml", "", CONFIG),
    ("parallel", "examples/parallel.yaml", "", CONFIG),
    ("nested", "tests/executor_argo/pipelines/nested.yaml", "", CONFIG),
    ("one-task", "tests/executor_argo/pipelines/one-task.yaml", "", CONFIG),
    ("operator", "tests/executor_argo/pipelines/operator.yaml", "", OPERATOR),
]


def _render(pipeline: str, parameters_file: str, config: str = CONFIG) -> str:
    prepared = prepare_run(pipeline, config, parameters_file)
    return prepared.executor.render(prepared.context)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "pipeline", "parameters_file", "config"), CASES, ids=[c[0] for c in CASES]
)
def test_example_renders_to_its_golden_workflow(
    in_repo: Path,
    check_workflow: Callable[[dict[str, Any]], None],
    published_validators: dict[str, Any],
    name: str,
    pipeline: str,
    parameters_file: str,
    config: str,
) -> None:
    text = _render(pipeline, parameters_file, config)
    document = yaml.safe_load(text)
    check_workflow(document)
    # Argo's schema as published (IntOrString and Quantity fields typed as strings) too.
    errors = schema_errors(published_validators[document["kind"]], document)
    assert not errors, "the published schema rejects the workflow:\n" + "\n".join(errors)
    golden = GOLDEN / f"{name}.yaml"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run with MAGNUS_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), (
        f"{pipeline} no longer renders to {golden.name}; if the change is intended, "
        "regenerate with MAGNUS_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.fixture(scope="module")
def published_validators(published_schema: dict[str, Any]) -> dict[str, Any]:
    """Validators of Argo's schema exactly as published, by kind."""
    return {
        kind: validator_for_kind(published_schema, kind) for kind in ("Workflow", "CronWorkflow")
    }


def test_rendering_twice_gives_the_same_bytes(in_repo: Path) -> None:
    assert _render("examples/map.yaml", "") == _render("examples/map.yaml", "")


def test_another_process_renders_the_same_bytes(in_repo: Path) -> None:
    # A different hash seed reorders every set and dict built from hashes: nothing may depend
    # on that.
    script = (
        "import sys; sys.path.insert(0, 'tests');"
        "import logging; logging.getLogger('magnus').setLevel('WARNING');"
        "from executor_argo.argo_helpers import prepare_run;"
        f"r = prepare_run('tests/executor_argo/pipelines/nested.yaml', {CONFIG!r});"
        "sys.stdout.write(r.executor.render(r.context))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
    outputs = set()
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env={**env, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert outputs.pop() == _render("tests/executor_argo/pipelines/nested.yaml", "")
