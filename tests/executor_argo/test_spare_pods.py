"""Workflows without pods that do nothing, and large maps in batches, played as on Argo.

Each played run is compared with a local run of the same pipeline: whatever a pod no longer
rendered used to record (a branch's success step, the run's end) is still recorded, by the pod
that runs before it; a batched map records every element in its own branch log.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
import yaml
from executor_argo import test_harness
from executor_argo.argo_harness import FAILED, SUCCEEDED, Result
from executor_argo.test_harness import Stage, assert_same_run

#: the project on the S3 server that the harness tests play in (their ``stage`` fixture)
staged = test_harness.stage

WORDS = ["amber", "blue sky", "coral", "dune"]

#: a map of one step, then a map whose branch has two steps, run in batches of two elements
#: (override ``batched``), over four words; ``coral`` always fails in the second map, and every
#: run there of an element's first step leaves a line in a file
PIPELINE = """\
dag:
  start_at: list
  steps:
    list:
      type: task
      command_type: shell
      command: export MAGNUS_PRM_words='WORDS'
      next: each
    each:
      type: map
      iterate_on: words
      iterate_as: word
      next: batched
      branch:
        start_at: shout
        steps:
          shout:
            type: task
            command_type: shell
            command: echo "$MAGNUS_MAP_VARIABLE"
            next: success
          success: {type: success}
          fail: {type: fail}
    batched:
      type: map
      iterate_on: words
      iterate_as: word
      overrides: {argo: batched}
      next: success
      branch:
        start_at: shout
        steps:
          shout:
            type: task
            command_type: shell
            command: |
              name=$(echo "$MAGNUS_MAP_VARIABLE" | tr -dc a-z)
              echo run >> "ran-$name"
              case "$name" in *coral*) exit 1 ;; esac
            max_attempts: 2
            next: count
          count:
            type: stub
            next: success
          success: {type: success}
          fail: {type: fail}
    success: {type: success}
    fail: {type: fail}
""".replace("WORDS", json.dumps(WORDS))


def _config(stage: Stage, name: str, **executor: Any) -> str:
    """A copy of ``argo.yaml`` (same stores) with more executor keys."""
    config = yaml.safe_load((stage.root / "argo.yaml").read_text())
    config["executor"]["config"].update(executor)
    (stage.root / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def _pods(result: Result) -> list[str]:
    """The templates of the pods that ran (every attempt), the exit handler's left out."""
    return [node.template for node in result.containers() if node not in result.exit_handler()]


@pytest.mark.e2e
def test_maps_cost_a_pod_per_element_or_batch_and_record_every_element_as_locally(
    staged: Stage,
) -> None:
    stage = staged
    (stage.root / "maps.yaml").write_text(PIPELINE)
    batched = {"batched": {"batch_size": 2}}
    config = _config(stage, "argo-maps.yaml", label_map_elements=True, overrides=batched)
    document = stage.render("maps.yaml", config=config)
    result = stage.play(document, arguments={"run_id": "argo-maps"})
    assert result.phase == FAILED, result.trace()
    # A map of one step: its fan-out, one pod per word, its fan-in (N + 2, no success pods).
    # Four words in batches of two: two pods; the one holding coral fails.
    assert _pods(result) == [
        *["list", "each-fan-out", *["each-map-shout"] * 4, "each-fan-in"],
        *["batched-fan-out", *["batched-batch"] * 2, "batched-fan-in"],
    ]
    batches = result.containers("batched-batch")
    assert [node.phase for node in batches] == [SUCCEEDED, FAILED]
    # Each element's (or batch's) item shows what it holds, as Argo's UI shows it.
    items = {
        node.template: json.loads(node.outputs["iterate-on"])
        for node in result.containers()
        if "iterate-on" in node.outputs
    }
    assert items["each-fan-out"][1] == {"element": "blue sky", "index": 1}
    assert items["batched-fan-out"] == [
        {"elements": "amber … blue sky", "index": 0},
        {"elements": "coral … dune", "index": 1},
    ]
    assert "blue sky" in result.containers("each-map-shout")[1].name
    # coral's failing step was retried alone, in its batch's pod.
    runs = {
        w: (stage.root / f"ran-word{w.replace(' ', '')}").read_text().count("run") for w in WORDS
    }
    assert runs == {"amber": 1, "blue sky": 1, "coral": 2, "dune": 1}
    # The batch run again (a retried pod) runs none of its elements that ended.
    again = subprocess.run(
        batches[1].command, cwd=stage.root, env={**os.environ, **batches[1].env}, check=False
    )
    assert again.returncode == 1  # coral is still FAIL
    assert (stage.root / "ran-worddune").read_text().count("run") == 1
    # What the success pods of the branches recorded, the pods before them did: the run log
    # is the local run's, element by element.
    assert stage.run_locally("maps.yaml", "local-maps") == 1
    log = assert_same_run(stage, "argo-maps", "local-maps")
    assert log["status"] == "FAIL"
    each = log["steps"]["each"]["branches"]
    assert [branch["status"] for branch in each.values()] == ["SUCCESS"] * 4
    assert all(any(n.endswith(".success") for n in b["steps"]) for b in each.values())
    batched = log["steps"]["batched"]["branches"]
    assert len(batched) == len(WORDS)
    failed = [name for name, branch in batched.items() if branch["status"] != "SUCCESS"]
    assert failed == ["batched.coral"]
