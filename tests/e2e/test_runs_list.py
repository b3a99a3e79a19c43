"""``magnus runs list``: newest first, --limit, --json, and columns of parameters and metrics;
the tables and trees of ``runs list`` and ``runs show`` drawn as rich draws them, coloured only
when colour is wanted."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import run_magnus

from magnus.reports import Node, RunRow, duration_of, render_run_list
from magnus.runlog.models import RunLog, format_time

pytestmark = pytest.mark.e2e

STEPS = """
from magnus import track_this


def train(x: int):
    # Tracked at two epochs: the list shows the value of the last one.
    track_this(step=0, loss=x * 100)
    track_this(step=1, loss=x / 10)
    return {"y": x * 2}
"""

PIPELINE = """
dag:
  start_at: train
  steps:
    train: {type: task, command: steps.train, next: success}
    success: {type: success}
    fail: {type: fail}
"""


def _list(project: Path, *args: str) -> str:
    result = run_magnus("runs", "list", *args, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs, oldest first: ``one`` (x=1), ``two`` (x=2), ``three`` (x=3)."""
    project = tmp_path_factory.mktemp("list")
    (project / "steps.py").write_text(STEPS)
    (project / "pipeline.yaml").write_text(PIPELINE)
    for x, run_id in enumerate(["one", "two", "three"], start=1):
        (project / "params.yaml").write_text(f"x: {x}\n")
        result = run_magnus(
            "execute", "-f", "pipeline.yaml", "-p", "params.yaml", "--run-id", run_id, "--tag",
            "t" if x > 1 else "", cwd=project,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_json_keeps_the_newest_with_the_chosen_parameters_and_metrics(runs: Path) -> None:
    rows = json.loads(_list(runs, "--param", "x", "--metric", "loss", "--json", "--limit", "2"))
    assert [r["run_id"] for r in rows] == ["three", "two"]
    assert [(r["params"], r["metrics"]) for r in rows] == [
        ({"x": 3}, {"loss": 0.3}),
        ({"x": 2}, {"loss": 0.2}),
    ]
    three = rows[0]
    assert three["status"] == "SUCCESS" and three["tag"] == "t"
    assert three["start_time"] < three["end_time"] and three["duration_seconds"] >= 0
    assert set(three) == {
        "run_id", "status", "start_time", "end_time", "duration_seconds", "tag", "message",
        "params", "metrics",
    }  # fmt: skip

    # The limit counts after the filters; a parameter produced by a step, or not recorded.
    rows = json.loads(_list(runs, "--tag", "", "--param", "y", "--param", "nope", "--json"))
    assert [(r["run_id"], r["params"], r["metrics"]) for r in rows] == [
        ("one", {"y": 2, "nope": None}, {})
    ]


def test_the_table_has_a_column_per_parameter_and_metric(runs: Path) -> None:
    lines = _list(runs, "--param", "x", "--metric", "loss").splitlines()
    header = next(line for line in lines if "run id" in line)
    cells = [cell.strip() for cell in header.strip("┃│ ").split("┃")]
    assert cells == ["run id", "status", "start", "duration", "tag", "x", "loss"]
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines if "│" in line]
    assert [(r[0], r[5], r[6]) for r in rows] == [
        ("three", "3", "0.3"),
        ("two", "2", "0.2"),
        ("one", "1", "0.1"),
    ]
    # Without them, the columns are as they always were.
    plain = _list(runs, "--limit", "1")
    assert "three" in plain and "two" not in plain and "loss" not in plain


# The views are written line by line, not laid out by rich: they must read as rich drew them.


def _rich(renderable: Any, width: int = 200) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, highlight=False, soft_wrap=True, color_system=None).print(
        renderable
    )
    return out.getvalue()


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def test_a_tree_is_drawn_as_rich_draws_it() -> None:
    from rich.text import Text
    from rich.tree import Tree

    labels = [
        "step0000 task SUCCESS",
        "a message\non two lines",
        "a\ttab, a carriage\rreturn",
        "long " + "x" * 300,
        "wide 数据" * 40,
        "",
        "trailing spaces   ",
    ]
    ours, theirs = Node(("bold", "run")), Tree(Text("run"))
    for index, label in enumerate(labels):
        node, branch = ours.add(("", label)), theirs.add(Text(label))
        for inner in labels[index:]:
            node.add(("red", inner)).add(("", inner))
            branch.add(Text(inner)).add(Text(inner))
    drawn = "".join("".join(text for _, text in line) + "\n" for line in ours.lines(200))
    assert drawn == _rich(theirs)
    assert max(len(line) for line in drawn.splitlines()) == 200  # the long lines were cut


def _row(run_id: str, tag: str, status: str = "SUCCESS", **params: Any) -> RunRow:
    start = datetime(2026, 12, 6, 12, 0, 0)
    run_log = RunLog(
        run_id=run_id,
        status=status,
        tag=tag,
        start_time=format_time(start),
        end_time=format_time(start + timedelta(seconds=len(run_id))),
        message="half written" if status == "UNREADABLE" else "",
    )
    return RunRow(run_log, params)


def test_a_table_is_drawn_as_rich_draws_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.table import Table

    _plain(monkeypatch)
    for rows, params in [
        ([], ()),
        ([_row("one", "données 数据"), _row("a-much-longer-run-id", "", "FAIL")], ()),
        # Too wide for 200 columns: columns shrink and cells wrap as rich decides.
        ([_row("wide", "t", **{f"p{i}": "word " * 8 for i in range(6)})], [f"p{i}" for i in range(6)]),
    ]:  # fmt: skip
        table = Table("run id", "status", "start", "duration", "tag", *params)
        for row in rows:
            cells = [str(row.params[name]) for name in params]
            run_log = row.run_log
            table.add_row(
                run_log.run_id, run_log.status, run_log.start_time[:19], duration_of(run_log),
                run_log.tag, *cells,
            )  # fmt: skip
        render_run_list(rows, params)
        assert capsys.readouterr().out == _rich(table)


def test_colours_only_when_wanted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_row("good", ""), _row("bad", "", "FAIL"), _row("torn", "", "UNREADABLE")]
    _plain(monkeypatch)
    render_run_list(rows)
    plain = capsys.readouterr().out
    assert "\x1b" not in plain and "│ good " in plain
    assert plain.rstrip().endswith("torn cannot be read: half written")
    monkeypatch.setenv("FORCE_COLOR", "1")
    render_run_list(rows)
    coloured = capsys.readouterr().out
    assert "\x1b[32mSUCCESS\x1b[0m" in coloured and "\x1b[31mFAIL\x1b[0m" in coloured
    assert "\x1b[1mrun id\x1b[0m" in coloured
    # Without the codes, the same table.
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    monkeypatch.setenv("NO_COLOR", "1")
    render_run_list(rows)
    assert capsys.readouterr().out == plain


def test_the_views_need_no_layout_engine(runs: Path) -> None:
    """What makes a view of 10,000 steps or runs cost seconds: rich's layout. It is not loaded."""
    script = (
        "import sys\n"
        "from magnus.cli import cli\n"
        "for args in (['runs', 'list', '--param', 'x'], ['runs', 'show', 'three']):\n"
        "    cli.main(args, standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m in ('rich.table', 'rich.tree', 'rich.console')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=runs, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    *shown, loaded = result.stdout.splitlines()
    assert loaded == "[]"
    assert any("three" in line and "SUCCESS" in line for line in shown)
    assert any("attempt 1 SUCCESS" in line for line in shown)
