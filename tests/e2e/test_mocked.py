"""The mocked executor as magnus 0.5 documents it: unpatched steps run nothing but still move
their catalog data; a transfer that matches nothing is a warning, not a failure."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from helpers import show_run

pytestmark = pytest.mark.e2e

PIPELINE = "examples/mocked.yaml"
CONTENT = "the quick brown fox jumps over the lazy dog\n"


def test_a_patched_step_reads_what_a_mocked_step_put(project: Path, run_magnus: Any) -> None:
    # What an earlier real run of the mocked step left in the working folder.
    (project / "data").mkdir()
    (project / "data" / "mocked.txt").write_text(CONTENT)
    digest = hashlib.sha256(CONTENT.encode()).hexdigest()

    result = run_magnus(
        "execute", "-f", PIPELINE, "-c", "examples/configs/mocked.yaml", "--run-id", "mk",
        cwd=project,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "quick brown fox" in result.stdout  # the patched command ran and read the file
    steps = show_run("mk", project)["steps"]
    assert [steps[name]["mock"] for name in ("make data", "train", "count words")] == [
        True,
        True,
        False,
    ]
    made = steps["make data"]
    assert [(e["name"], e["stage"], e["data_hash"]) for e in made["data_catalog"]] == [
        ("data/mocked.txt", "put", digest)
    ]
    assert len(made["attempts"]) == 1 and made["attempts"][0]["status"] == "SUCCESS"
    assert steps["train"]["data_catalog"] == []
    got = [(e["name"], e["stage"], e["data_hash"]) for e in steps["count words"]["data_catalog"]]
    assert got[0] == ("data/mocked.txt", "get", digest)
    assert (project / ".catalog" / "mk" / "data" / "mocked.txt").read_text() == CONTENT


def test_a_mocked_transfer_that_matches_nothing_warns(project: Path, run_magnus: Any) -> None:
    (project / "mock-all.yaml").write_text("executor: {type: mocked}\n")

    result = run_magnus(
        "execute", "-f", PIPELINE, "-c", "mock-all.yaml", "--run-id", "bare", cwd=project
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Mocked step make data: catalog put of 'data/mocked.txt' skipped" in result.stderr
    assert "Mocked step count words: catalog get of 'data/mocked.txt' skipped" in result.stderr
    log = show_run("bare", project)
    assert log["status"] == "SUCCESS"
    for name in ("make data", "train", "count words"):
        assert log["steps"][name]["mock"] is True
        assert log["steps"][name]["status"] == "SUCCESS"
        assert log["steps"][name]["data_catalog"] == []
    assert not (project / "data").exists()  # nothing ran
