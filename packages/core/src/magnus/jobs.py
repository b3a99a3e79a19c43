"""Jobs: a single task without a pipeline, and how a job file becomes a one-step graph.

A job file holds one top-level ``job`` mapping: a task definition as a pipeline step would write
it (``command_type``, ``command``, ``catalog``, ``max_attempts``, ``cache``, ...), with an
optional ``name`` (default: the file's stem) and ``description``::

    job:
      name: prepare
      command: examples.functions.prepare
      catalog:
        put: [data/rows.csv]

It becomes the graph ``<name> -> success`` (``fail`` on failure), built and run exactly as a
pipeline is, so a job's run log holds what a pipeline's does. The run log tells the two apart by
``run_config.execution_plan``: ``unchained`` for a job, ``chained`` for a pipeline (magnus
0.5's words).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from magnus.exceptions import ConfigurationError, MagnusError
from magnus.graph import Graph
from magnus.yaml_reader import read_yaml

#: the top-level key of a job file
JOB_KEY = "job"
#: ``run_config.execution_plan`` of a job and of a pipeline
JOB_PLAN = "unchained"
PIPELINE_PLAN = "chained"
#: the step name of a job given none, and whose file's stem cannot name a step
DEFAULT_NAME = "job"
#: keys of a job that are not the task's own
JOB_ONLY_KEYS = ("name", "description")
#: keys of a pipeline step that lead to other steps: a job has none
ROUTING_KEYS = ("next", "on_failure")
#: the terminal steps of a job's graph, which its own step cannot be called
TERMINALS = ("success", "fail")


def is_job_document(document: Any) -> bool:
    """Whether a definition file's content is a job (a top-level ``job`` mapping)."""
    return isinstance(document, dict) and JOB_KEY in document


def default_job_name(path: str | Path) -> str:
    """The step name of a job file that gives none: its stem, made a valid step name."""
    stem = re.sub(r"[.%/\\\0\s]+", "_", Path(path).stem).strip("_")
    return stem if stem and stem not in TERMINALS else DEFAULT_NAME


def job_graph_definition(document: Any, source: str, default_name: str = DEFAULT_NAME) -> Any:
    """The pipeline definition (``start_at``, ``steps``) of a job file's content.

    ``source`` names the file (or "the SDK job") in the one-line error raised for anything that
    is not a job; the task's own fields are checked when the graph is built, as a step's are.
    """
    if not isinstance(document, dict) or JOB_KEY not in document:
        raise ConfigurationError(
            f"{source}: there is no top-level 'job' mapping (a pipeline runs with magnus execute)"
        )
    unknown = sorted(set(document) - {JOB_KEY}, key=str)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigurationError(
            f"{source}: unknown top-level key {names}: a job file holds only 'job'"
        )
    job = document[JOB_KEY]
    if not isinstance(job, dict):
        raise ConfigurationError(
            f"{source}: 'job' must be a mapping of the task's keys (command, command_type, ...)"
        )
    for key in ROUTING_KEYS:
        if key in job:
            raise ConfigurationError(
                f"{source}: job: key {key!r}: a job is a single step and leads to no other "
                "(chain steps in a pipeline)"
            )
    step_type = job.get("type", "task")
    if step_type != "task":
        raise ConfigurationError(f"{source}: job: key 'type': a job is a task, not {step_type!r}")
    name = job.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{source}: job: key 'name' must be a non-empty string")
    if name in TERMINALS:
        raise ConfigurationError(
            f"{source}: job: key 'name': {name!r} is the name of the job's own terminal step"
        )
    step = {key: value for key, value in job.items() if key not in JOB_ONLY_KEYS}
    definition: dict[str, Any] = {
        "start_at": name,
        "name": name,
        "steps": {
            name: {**step, "type": "task", "next": "success"},
            "success": {"type": "success"},
            "fail": {"type": "fail"},
        },
    }
    if job.get("description"):
        definition["description"] = str(job["description"])
    return definition


def job_error(problems: list[str], source: str, name: str) -> ConfigurationError:
    """The problems found building a job's step, said of the job, in one line."""
    prefix = f"step {name!r} in the pipeline: "
    said = "; ".join(problem.removeprefix(prefix) for problem in problems)
    return ConfigurationError(f"{source}: job: {said}")


def execution_plan_of(pipeline_file: str, graph: Graph) -> str:
    """What ``run_config.execution_plan`` records of a run of ``graph``, read from the file:
    ``unchained`` for a job file, ``chained`` for a pipeline.

    Only a one-step graph can come from a job file: no other file is read again.
    """
    steps = sum(1 for node in graph.nodes.values() if not node.is_terminal)
    if not pipeline_file or steps != 1:
        return PIPELINE_PLAN
    try:
        document = read_yaml(pipeline_file, "pipeline file")
    except MagnusError:  # unreadable now: nothing says it holds a job
        return PIPELINE_PLAN
    return JOB_PLAN if is_job_document(document) else PIPELINE_PLAN
