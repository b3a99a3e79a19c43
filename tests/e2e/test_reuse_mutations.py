"""Reuse by fingerprint under single-point edits: exactly the affected steps run again.

A project of six steps -- ``ingest`` hands two source files to the catalog, ``report`` is a
notebook (early, where only the initial parameters reach it: a kernel is slow to start),
``load`` reads the large file, ``clean`` calls a helper of another module, ``features`` is a
shell step, ``train`` binds parameters and imports a module of its own -- runs once (the
baseline). Each test copies the project with its run log store and catalog, makes one edit and
runs it again with ``--reuse``: the steps that ran must be exactly those whose inputs changed
(code, definition, consumed parameters, data got, environment) and those whose inputs change
because of them; every other step must be reused from the baseline.

Shell and notebook steps are handed every parameter in scope, so they consume all of them: any
parameter change reaches them. A step that runs again and produces the same parameters and data
leaves its successors' inputs as they were: they are reused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Set
from pathlib import Path

import pytest
import yaml
from helpers import run_magnus

from magnus.runlog.chunked import ChunkedFileSystemRunLogStore

pytestmark = pytest.mark.e2e

STEPS = ("ingest", "report", "load", "clean", "features", "train")
EVERY_STEP = frozenset(STEPS)
BASELINE = "baseline"

#: the large input: about 5 MB, so that one byte in the middle is a needle in a haystack
INPUT_SIZE = 5 * 1024 * 1024
MIDDLE = INPUT_SIZE // 2

MODULES = {
    "ingest.py": '''
from pathlib import Path


def ingest():
    """Hand the source files to the catalog (the step's put)."""
    for name in ("raw/input.bin", "raw/labels.csv"):
        assert Path(name).stat().st_size > 0, name
''',
    "load.py": '''
from pathlib import Path

CHUNKS = 8


def load():
    """Sum the bytes of each chunk of the input."""
    data = Path("raw/input.bin").read_bytes()
    size = len(data) // CHUNKS
    return {"values": [sum(data[i * size : (i + 1) * size]) % 9973 for i in range(CHUNKS)]}
''',
    "clean.py": """
from helpers import normalise


def clean(values: list[int]):
    return {"cleaned": normalise(values)}
""",
    "train.py": """
from pathlib import Path

from train_utils import fit


def train(cleaned: list[int], lr: float, epochs: int):
    features = Path("data/features.txt").read_text().strip()
    labels = Path("raw/labels.csv").read_text().split()
    model = fit(cleaned, lr, epochs) + len(features)
    return {"model": model, "classes": sorted(set(labels))}
""",
    "src/helpers.py": '''
"""Helpers of the steps."""

from constants import FACTOR


def normalise(values):
    """Scale every value."""
    # integers only: the result is compared exactly
    return [value * FACTOR for value in values]
''',
    "src/constants.py": "FACTOR = 3\n",
    "src/train_utils.py": """
def fit(values, lr, epochs):
    return round(sum(values) * lr * epochs, 6)
""",
    "src/style.py": "CASE = 'upper'\n",
    "src/unrelated.py": """
def unused():
    return 1
""",
}

FEATURES = 'mkdir -p data && echo "$MAGNUS_PRM_cleaned" > data/features.txt'

PIPELINE = {
    "dag": {
        "start_at": "ingest",
        "steps": {
            "ingest": {
                "type": "task",
                "command": "ingest.ingest",
                "catalog": {"put": ["raw/input.bin", "raw/labels.csv"]},
                "next": "report",
            },
            "report": {
                "type": "task",
                "command_type": "notebook",
                "command": "report.ipynb",
                "next": "load",
            },
            "load": {
                "type": "task",
                "command": "load.load",
                "catalog": {"get": ["raw/input.bin"]},
                "next": "clean",
            },
            "clean": {"type": "task", "command": "clean.clean", "next": "features"},
            "features": {
                "type": "task",
                "command_type": "shell",
                "command": FEATURES,
                "catalog": {"put": ["data/features.txt"]},
                "next": "train",
            },
            "train": {
                "type": "task",
                "command": "train.train",
                "catalog": {"get": ["data/features.txt", "raw/labels.csv"]},
                "next": "success",
            },
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
}

PARAMETERS = "lr: 0.1\nepochs: 3\ntitle: baseline\n"


def _cell(cell_type: str, source: str, tags: tuple[str, ...] = ()) -> dict[str, object]:
    cell: dict[str, object] = {"cell_type": cell_type, "metadata": {"tags": list(tags)}}
    cell["source"] = source
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


NOTEBOOK = {
    "cells": [
        _cell("markdown", "# Report"),
        _cell("code", "title = ''", ("parameters",)),
        _cell("code", "from style import CASE\n\nsummary = getattr(title, CASE)()"),
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _input_bytes() -> bytes:
    return bytes(range(256)) * (INPUT_SIZE // 256)


def _fake_distribution(project: Path, version: str) -> None:
    """An installed distribution that no step imports: only its version is in the environment."""
    for old in (project / "deps").glob("fakedep-*.dist-info"):
        shutil.rmtree(old)
    info = project / "deps" / f"fakedep-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakedep\nVersion: {version}\n")


def build(project: Path) -> None:
    """Write the project into ``project``."""
    for name, text in MODULES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text.lstrip())
    (project / "raw").mkdir()
    (project / "raw" / "input.bin").write_bytes(_input_bytes())
    (project / "raw" / "labels.csv").write_text("cat\ndog\ncat\n")
    (project / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (project / "parameters.yaml").write_text(PARAMETERS)
    (project / "report.ipynb").write_text(json.dumps(NOTEBOOK, indent=1))
    (project / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "fakedep"\n')
    _fake_distribution(project, "1.0")


def run(project: Path, run_id: str) -> dict[str, object]:
    """Run the pipeline with reuse on; its run log."""
    # The helpers' folder and the installed fake distribution, for every run of the project.
    path = os.pathsep.join(str(project / folder) for folder in ("src", "deps"))
    result = run_magnus(
        "execute",
        "-f",
        "pipeline.yaml",
        "-p",
        "parameters.yaml",
        "--run-id",
        run_id,
        "--reuse",
        cwd=project,
        env={"PYTHONPATH": path},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # What ``magnus runs show RUN_ID --json`` prints, read here: a process fewer per edit.
    store = ChunkedFileSystemRunLogStore(log_folder=str(project / ".run_log_store"))
    return store.get_run_log_by_id(run_id, full=True).to_json_dict()


def ran_and_reused(log: dict[str, object]) -> tuple[set[str], set[str]]:
    """The task steps that ran, and those reused from the baseline (each is one or the other)."""
    steps = log["steps"]
    assert isinstance(steps, dict)
    ran: set[str] = set()
    reused: set[str] = set()
    for name in STEPS:
        step = steps[name]
        assert step["status"] == "SUCCESS", (name, step["message"])
        if step["mock"]:
            assert step["reused_from"] == BASELINE, (name, step)
            reused.add(name)
        else:
            assert step["attempts"] and "reused_from" not in step, (name, step)
            ran.add(name)
    return ran, reused


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after its baseline run (once per worker): every step ran."""
    project = tmp_path_factory.mktemp("reuse-project")
    build(project)
    ran, _ = ran_and_reused(run(project, BASELINE))
    assert ran == EVERY_STEP
    return project


# ------------------------------------------------------------------------------ the edits


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _edit(name: str, old: str, new: str) -> Callable[[Path], None]:
    return lambda project: _replace(project / name, old, new)


def _pipeline(change: Callable[[dict[str, dict[str, object]]], None]) -> Callable[[Path], None]:
    """An edit of the pipeline's steps, written back in the baseline's style."""

    def edit(project: Path) -> None:
        definition = yaml.safe_load((project / "pipeline.yaml").read_text())
        change(definition["dag"]["steps"])
        (project / "pipeline.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))

    return edit


def _flip_middle_byte(name: str, offset: int) -> Callable[[Path], None]:
    def edit(project: Path) -> None:
        with open(project / name, "r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)
            handle.seek(offset)
            handle.write(bytes([(byte[0] + 1) % 256]))

    return edit


def _notebook(change: Callable[[list[dict[str, object]]], None]) -> Callable[[Path], None]:
    def edit(project: Path) -> None:
        notebook = json.loads((project / "report.ipynb").read_text())
        change(notebook["cells"])
        (project / "report.ipynb").write_text(json.dumps(notebook, indent=1))

    return edit


def _step(name: str, **fields: object) -> Callable[[dict[str, dict[str, object]]], None]:
    return lambda steps: steps[name].update(fields)


def _insert_stub(steps: dict[str, dict[str, object]]) -> None:
    """Re-route ``train`` through a new stub: ``train`` is reached as before."""
    steps["train"]["next"] = "gate"
    steps["gate"] = {"type": "stub", "next": "success"}


def _rename_local(project: Path) -> None:
    _replace(
        project / "src/helpers.py",
        "value * FACTOR for value in values",
        "v * FACTOR for v in values",
    )


def _flow_style(project: Path) -> None:
    definition = yaml.safe_load((project / "pipeline.yaml").read_text())
    (project / "pipeline.yaml").write_text(yaml.safe_dump(definition, default_flow_style=True))


AFTER_CLEAN = {"clean", "features", "train"}

#: (edit, the steps that must run); every other step must be reused
MUTATIONS: dict[str, tuple[Callable[[Path], object], Set[str]]] = {
    # --- code: project modules, by what they compute
    "helper function": (_edit("src/helpers.py", "* FACTOR", "* FACTOR + 1"), AFTER_CLEAN),
    "constant used by a helper": (_edit("src/constants.py", "3", "4"), AFTER_CLEAN),
    "helper renames a local variable": (_rename_local, {"clean"}),
    "helper module gains an unused function": (
        _edit("src/helpers.py", "def normalise", "def spare():\n    return 0\n\n\ndef normalise"),
        {"clean"},
    ),
    "comment in a helper": (_edit("src/helpers.py", "# integers only", "# ints, exactly"), set()),
    "comment in a step module": (
        _edit("clean.py", "\n\ndef", "\n\n# the cleaning step\ndef"),
        set(),
    ),
    "docstring of a helper": (_edit("src/helpers.py", "Scale every value.", "Scale."), set()),
    "module docstring": (_edit("src/helpers.py", "Helpers of the steps.", "Helpers."), set()),
    "reformatted helper": (
        _edit(
            "src/helpers.py",
            "[value * FACTOR for value in values]",
            "[\n        value  *  FACTOR\n        for value in values\n    ]",
        ),
        set(),
    ),
    "module imported by one step only": (
        _edit("src/train_utils.py", "* epochs", "* epochs * 2"),
        {"train"},
    ),
    "unrelated module": (_edit("src/unrelated.py", "return 1", "return 2"), set()),
    "new module nothing imports": (
        lambda project: (project / "src" / "extra.py").write_text("X = 1\n"),
        set(),
    ),
    "constant in a step module": (
        _edit("load.py", "CHUNKS = 8", "CHUNKS = 4"),
        {"load", *AFTER_CLEAN},
    ),
    "a step's own code, same result": (
        _edit("ingest.py", "for name", "checked = 0\n    for name"),
        {"ingest"},
    ),
    # --- parameters: only the steps that consume them
    "parameter value": (
        _edit("parameters.yaml", "lr: 0.1", "lr: 0.2"),
        {"features", "train", "report"},
    ),
    "parameter only shell and notebook steps consume": (
        _edit("parameters.yaml", "title: baseline", "title: final"),
        {"features", "report"},
    ),
    "parameter written differently, same value": (
        _edit("parameters.yaml", "lr: 0.1\nepochs: 3", "epochs: 3\nlr: 0.10"),
        set(),
    ),
    "new parameter": (
        _edit("parameters.yaml", "title:", "seed: 7\ntitle:"),
        {"features", "report"},
    ),
    # --- data got from the catalog
    "one byte in the middle of the large input": (
        _flip_middle_byte("raw/input.bin", MIDDLE),
        EVERY_STEP - {"report"},
    ),
    "one byte of a file only train gets": (
        _flip_middle_byte("raw/labels.csv", 5),
        {"ingest", "train"},
    ),
    # --- environment
    "dependency version": (lambda project: _fake_distribution(project, "1.1"), EVERY_STEP),
    "lock file": (_edit("uv.lock", "version = 1", "version = 2"), EVERY_STEP),
    # --- shell and notebook steps
    "shell command": (
        _pipeline(_step("features", command=FEATURES.replace("echo", "echo x"))),
        {"features", "train"},
    ),
    "shell command, same output": (
        _pipeline(_step("features", command="true && " + FEATURES)),
        {"features"},
    ),
    "notebook code cell": (
        _notebook(lambda cells: cells[2].update(source="summary = title.lower()")),
        {"report"},
    ),
    "module only the notebook imports": (_edit("src/style.py", "upper", "lower"), {"report"}),
    "notebook markdown cell": (
        _notebook(lambda cells: cells[0].update(source="# The report")),
        set(),
    ),
    # --- a step's definition: what it does counts, how it is reached or retried does not
    "catalog get pattern": (
        _pipeline(_step("train", catalog={"get": ["data/feature*.txt", "raw/labels.csv"]})),
        {"train"},
    ),
    "catalog put pattern": (
        _pipeline(_step("ingest", catalog={"put": ["raw/*.bin", "raw/labels.csv"]})),
        {"ingest"},
    ),
    "python command": (
        _edit("load.py", "def load():", "def load():\n    return read()\n\n\ndef read():"),
        {"load"},
    ),
    "next, re-routed through a new step": (_pipeline(_insert_stub), set()),
    "max_attempts": (_pipeline(_step("train", max_attempts=3)), set()),
    "on_failure": (_pipeline(_step("clean", on_failure="fail")), set()),
    "cache flag": (_pipeline(_step("load", cache=True)), set()),
    "pipeline file reformatted": (_flow_style, set()),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_an_edit_reruns_exactly_what_it_affects(
    baseline: Path, tmp_path: Path, mutation: str
) -> None:
    edit, expected = MUTATIONS[mutation]
    project = tmp_path / "project"
    shutil.copytree(baseline, project, symlinks=True)
    edit(project)
    ran, reused = ran_and_reused(run(project, "edited"))
    assert ran == expected, f"{mutation}: needless {ran - expected}, false hits {expected - ran}"
    assert reused == EVERY_STEP - expected
