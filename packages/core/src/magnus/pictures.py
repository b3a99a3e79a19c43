"""The picture of a pipeline: its steps in topological layers, as mermaid, dot or a layout.

Everything here reads a graph's dump (``Graph.dump()``, the shape ``run_config.dag`` records):
steps by name with their ``type``, ``next``, ``on_failure`` and, for composites, ``branches``
(parallel, conditional: with its ``default``) or ``branch`` (map, loop, dag). A picture is plain
data, ready for JSON: the HTML page (``magnus.report_html``) turns its layers into coordinates
in the browser, where composite steps can be opened and closed.
"""

from __future__ import annotations

import re
from typing import Any

from magnus.control_flow import dumped_branches
from magnus.internal_names import MAP_PLACEHOLDER

NEXT = "next"
ON_FAILURE = "on_failure"


def picture_of(dump: dict[str, Any]) -> dict[str, Any]:
    """A graph's steps with their layer and order, its edges, and its branches' pictures.

    ``{"nodes": [{"id", "name", "type", "detail", "layer", "order", "branches":
    [{"name", "graph"}]}], "edges": [{"source", "target", "kind"}], "layers": n}``;
    ``id`` is the step's internal name (map elements keep the placeholder).
    """
    steps: dict[str, dict[str, Any]] = dump.get("steps", {})
    ids = {name: str(step.get("internal_name") or name) for name, step in steps.items()}
    edges = [
        {"source": ids[name], "target": ids[step[kind]], "kind": kind}
        for name, step in steps.items()
        for kind in (NEXT, ON_FAILURE)
        if step.get(kind) in steps
    ]
    layers = _layers(str(dump.get("start_at", "")), steps)
    order: dict[int, int] = {}
    nodes = []
    for name, step in steps.items():
        layer = layers[name]
        nodes.append(
            {
                "id": ids[name],
                "name": name,
                "type": str(step.get("type", "task")),
                "detail": _detail(step),
                "layer": layer,
                "order": order.setdefault(layer, 0),
                "branches": [
                    {"name": label, "graph": picture_of(branch)}
                    for label, branch in _branches(step)
                ],
            }
        )
        order[layer] += 1
    return {"nodes": nodes, "edges": edges, "layers": max(layers.values(), default=-1) + 1}


def _layers(start_at: str, steps: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each step's layer: the longest path to it from ``start_at`` (graphs have no cycles).

    Steps no edge reaches (the ``fail`` step when nothing routes to it) sit in the last layer,
    beside ``success``.
    """
    layer: dict[str, int] = {}
    if start_at in steps:
        layer[start_at] = 0
        # Relax edges until nothing moves: at most one pass per step in an acyclic graph.
        for _ in range(len(steps)):
            moved = False
            for name, step in steps.items():
                if name not in layer:
                    continue
                for kind in (NEXT, ON_FAILURE):
                    target = step.get(kind)
                    if target in steps and layer.get(target, -1) < layer[name] + 1:
                        layer[target] = layer[name] + 1
                        moved = True
            if not moved:
                break
    last = max(layer.values(), default=0)
    return {name: layer.get(name, last) for name in steps}


def _branches(step: dict[str, Any]) -> list[tuple[str, Any]]:
    labels = {"map": f"each {step.get('iterate_as')}", "loop": "each iteration"}
    return [
        (key or labels.get(str(step.get("type")), "dag"), branch)
        for key, branch in dumped_branches(step)
    ]


def _detail(step: dict[str, Any]) -> str:
    """One line under the step's name: its command, or what a map iterates on."""
    if step.get("type") == "map":
        return f"over {step.get('iterate_on')} as {step.get('iterate_as')}"
    if step.get("type") == "conditional":
        return f"by {step.get('parameter')}"
    if step.get("type") == "loop":
        return f"until {step.get('break_on')}, at most {step.get('max_iterations')} times"
    if step.get("type") == "dag" and step.get("dag_definition"):
        return str(step["dag_definition"])
    if step.get("command"):
        kind = step.get("command_type", "python")
        return f"{kind}: {step['command']}"
    return ""


# ------------------------------------------------------------------------------ text pictures


def _shown_id(internal_name: str) -> str:
    """A mermaid-safe id that still reads as the step (``s_`` keeps words like ``end`` apart)."""
    return "s_" + re.sub(r"\W", "_", internal_name.replace("." + MAP_PLACEHOLDER, ""))


def _label(node: dict[str, Any]) -> str:
    if node["type"] in ("task", "stub", "success", "fail"):
        return node["name"] if node["type"] != "stub" else f"{node['name']} (stub)"
    return f"{node['name']} ({node['type']})"


def to_mermaid(picture: dict[str, Any]) -> str:
    """A mermaid flowchart: composite steps point (dotted) at each branch, drawn as a subgraph."""
    lines = ["flowchart TD"]
    ids: dict[str, str] = {}

    def name(internal_name: str) -> str:
        if internal_name not in ids:
            base = _shown_id(internal_name)
            taken = set(ids.values())
            ids[internal_name] = base if base not in taken else f"{base}_{len(ids)}"
        return ids[internal_name]

    def text(value: str) -> str:
        return value.replace('"', "#quot;")

    def draw(graph: dict[str, Any], indent: str) -> None:
        for node in graph["nodes"]:
            shape = '(["{}"])' if node["type"] in ("success", "fail") else '["{}"]'
            lines.append(f"{indent}{name(node['id'])}{shape.format(text(_label(node)))}")
            for index, branch in enumerate(node["branches"]):
                sub = f"{name(node['id'])}__{index}"
                lines.append(f'{indent}subgraph {sub} ["{text(branch["name"])}"]')
                draw(branch["graph"], indent + "  ")
                lines.append(f"{indent}end")
                start = _start(branch["graph"])
                if start:
                    lines.append(f"{indent}{name(node['id'])} -.-> {name(start)}")
        for edge in graph["edges"]:
            arrow = "-->" if edge["kind"] == NEXT else "-. on_failure .->"
            lines.append(f"{indent}{name(edge['source'])} {arrow} {name(edge['target'])}")

    draw(picture, "  ")
    return "\n".join(lines) + "\n"


def to_dot(picture: dict[str, Any]) -> str:
    """A graphviz digraph: each branch a cluster, on_failure edges dashed and red."""
    lines = [
        "digraph pipeline {",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="sans-serif"];',
    ]
    clusters = 0

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def draw(graph: dict[str, Any], indent: str) -> None:
        nonlocal clusters
        for node in graph["nodes"]:
            shape = ", shape=ellipse" if node["type"] in ("success", "fail") else ""
            lines.append(f"{indent}{quoted(node['id'])} [label={quoted(_label(node))}{shape}];")
            for branch in node["branches"]:
                clusters += 1
                lines.append(f"{indent}subgraph cluster_{clusters} {{")
                lines.append(f"{indent}  label={quoted(branch['name'])};")
                draw(branch["graph"], indent + "  ")
                lines.append(f"{indent}}}")
                start = _start(branch["graph"])
                if start:
                    lines.append(f"{indent}{quoted(node['id'])} -> {quoted(start)} [style=dotted];")
        for edge in graph["edges"]:
            style = "" if edge["kind"] == NEXT else ' [style=dashed, color=red, label="on_failure"]'
            lines.append(f"{indent}{quoted(edge['source'])} -> {quoted(edge['target'])}{style};")

    draw(picture, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _start(graph: dict[str, Any]) -> str:
    """The id of a picture's first step (layer 0, first in order)."""
    firsts = [node["id"] for node in graph["nodes"] if node["layer"] == 0 and node["order"] == 0]
    return firsts[0] if firsts else ""


# ------------------------------------------------------------------------------ definitions


def dump_of_file(path: str) -> dict[str, Any]:
    """The graph dump of a pipeline YAML file, or of the pipeline an SDK script (``.py``) runs.

    A script is run in a subprocess with ``DEFINITION_FILE_VARIABLE`` set: its
    ``Pipeline.execute()`` writes the definition and ends the script, so nothing runs.
    """
    from magnus.building import load_pipeline_file
    from magnus.plugins import get_plugins

    if not path.endswith(".py"):
        return load_pipeline_file(path, get_plugins()).dump()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="magnus-dag-") as folder:
        return load_pipeline_file(_definition_of_script(path, folder), get_plugins()).dump()


def _definition_of_script(path: str, folder: str) -> str:
    import os
    import subprocess
    import sys

    from magnus.exceptions import ConfigurationError
    from magnus.sdk import DEFINITION_FILE_VARIABLE

    if not os.path.isfile(path):
        raise ConfigurationError(f"pipeline script {path!r} not found")
    written = os.path.join(folder, "pipeline.yaml")
    # The working folder on the path, as for `python -m`: scripts import the project's modules.
    python_path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, DEFINITION_FILE_VARIABLE: written, "PYTHONPATH": python_path}
    result = subprocess.run(
        [sys.executable, path], env=env, capture_output=True, text=True, check=False
    )
    if not os.path.exists(written):
        last = (result.stderr.strip().splitlines() or ["no error printed"])[-1]
        if result.returncode:
            raise ConfigurationError(f"{path} failed before Pipeline.execute(): {last}")
        raise ConfigurationError(f"{path} never calls Pipeline.execute(): no pipeline to draw")
    return written
