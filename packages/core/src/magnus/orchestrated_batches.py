"""A large map run by an orchestrator in batches: one process per slice of its elements.

An orchestrator keeps a status per pod it starts; a map over many elements would outgrow it
(Argo keeps a workflow's node statuses in one object of at most 1 MB). With ``--batch-size``
the map's fan-out writes one item per batch (:func:`fan_out_items`) and each batch's process
runs its elements in turn (:func:`execute_map_batch`), each recorded in its own branch log as in
a local run. With ``--labelled`` each item also carries a short label of what it holds, for the
orchestrator's UI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from magnus.composites import MapNode, enclosing_iterations
from magnus.context import current_run
from magnus.entrypoints import PreparedRun
from magnus.exceptions import MagnusError
from magnus.graph import find_branch, find_node
from magnus.internal_names import from_command_line, resolve
from magnus.orchestrated import ending, enter_run, fan, resolve_map_indices
from magnus.orchestration import BATCH_SIZE_OPTION, FAN_OUT, LABELLED_OPTION, MAP_INDICES_FILE_ENV
from magnus.runlog.models import FAIL, SUCCESS, TERMINAL_STATUSES, BranchLog, StepLog

#: the longest label of an element or a batch
LABEL_LENGTH = 40


def fan_out_items(
    run: PreparedRun, step_name: str, batch_size: int, map_variables: dict[str, Any] | None
) -> StepLog:
    """A map's fan-out writing labelled items, one per element or per batch of elements.

    As ``fan --mode out``; the file named by ``MAGNUS_MAP_INDICES_FILE`` then holds, instead of
    the ``n`` bare indices, ``{"element": <label>, "index": i}`` per element (``batch_size`` 1)
    or ``{"elements": "<first> … <last>", "index": b}`` per batch of ``batch_size`` elements
    (``ceil(n / batch_size)`` items), so an orchestrator starts (and keeps the status of) one
    pod per item and shows what each holds. The commands reading ``--map-variable`` take such
    an item as its index (:func:`indices_of_items`).
    """
    context = run.context
    assert context.dag is not None
    _, node = find_node(context.dag, from_command_line(step_name))
    if not isinstance(node, MapNode):
        raise MagnusError(
            f"{BATCH_SIZE_OPTION} and {LABELLED_OPTION} apply to a map step, not "
            f"{node.internal_name!r}"
        )
    if batch_size < 1:
        raise MagnusError(f"{BATCH_SIZE_OPTION} must be at least 1, not {batch_size}")
    step_log = fan(run, step_name, FAN_OUT, map_variables)
    indices_file = os.environ.get(MAP_INDICES_FILE_ENV)
    if not indices_file or not Path(indices_file).is_file():
        return step_log
    count = len(json.loads(Path(indices_file).read_text() or "[]"))
    elements = list(step_log.map_values or [])[:count]
    items: list[dict[str, Any]] = []
    for index, start in enumerate(range(0, len(elements), batch_size)):
        chunk = elements[start : start + batch_size]
        if batch_size == 1:
            items.append({"element": _label(chunk[0]), "index": index})
        else:
            ends = [_label(chunk[0])] + ([_label(chunk[-1])] if len(chunk) > 1 else [])
            items.append({"elements": " … ".join(ends), "index": index})
    Path(indices_file).write_text(json.dumps(items))
    return step_log


def _label(element: Any) -> str:
    """A short text of ``element`` for an orchestrator's UI (never template syntax)."""
    text = element if isinstance(element, str) else json.dumps(element, sort_keys=True)
    text = text.replace("{{", "{ {").replace("}}", "} }")
    return text if len(text) <= LABEL_LENGTH else text[: LABEL_LENGTH - 1] + "…"


def indices_of_items(map_variables: dict[str, Any]) -> dict[str, Any]:
    """``--map-variable`` with each labelled item (:func:`fan_out_items`) as its bare index."""
    return {
        name: value["index"]
        if isinstance(value, dict) and isinstance(value.get("index"), int)
        else value
        for name, value in map_variables.items()
    }


def execute_map_batch(
    run: PreparedRun, branch_name: str, batch_size: int, map_variables: dict[str, Any] | None
) -> str:
    """Run one batch of a map's elements in this process: the map's branch for each in turn.

    ``branch_name`` is the map's branch; ``map_variables`` holds the indices of the enclosing
    maps and, under the map's own ``iterate_as``, the batch number ``b``: elements
    ``b * batch_size`` to ``(b + 1) * batch_size - 1`` run, each recorded in its own branch log
    as in a local run (a failing step is retried ``max_attempts`` times in this process, for
    that element alone). An element whose branch already ended, SUCCESS or FAIL, is not run
    again: a batch retried after its pod was lost runs only the elements that did not end.
    Returns SUCCESS when every element of the batch succeeded, else FAIL.
    """
    context = run.context
    assert context.dag is not None
    store = context.run_log_store
    graph = find_branch(context.dag, from_command_line(branch_name))
    around = enclosing_iterations(context.dag, graph.internal_branch_name + ".x")
    node = around[-1] if around else None
    if not isinstance(node, MapNode) or node.branch is not graph:
        raise MagnusError(f"{graph.internal_branch_name!r} is not the branch of a map step")
    given = dict(map_variables or {})
    batch = given.pop(node.iterate_as, None)
    if not isinstance(batch, int) or batch < 0 or batch_size < 1:
        raise MagnusError(f"map {node.internal_name!r}: {batch!r} is not a batch number")
    token = enter_run(run)
    try:
        outer = resolve_map_indices(context, node.internal_name, given)
        step_name = resolve(node.internal_name, outer)
        elements = store.get_step_log(step_name, context.run_id, full=False).map_values or []
        statuses: list[str] = []
        for index in range(batch * batch_size, min(len(elements), (batch + 1) * batch_size)):
            values = {**outer, node.iterate_as: elements[index]}
            name = resolve(graph.internal_branch_name, values)
            branch = store.get_branch_log(name, context.run_id, full=False)
            assert isinstance(branch, BranchLog)
            if branch.status not in TERMINAL_STATUSES:
                with ending(context, branch=name):
                    run.executor.execute_graph(context, graph, values)
                branch = store.get_branch_log(name, context.run_id, full=False)
                assert isinstance(branch, BranchLog)
            statuses.append(branch.status)
    finally:
        current_run.reset(token)
    return SUCCESS if all(status == SUCCESS for status in statuses) else FAIL
