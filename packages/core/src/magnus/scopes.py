"""Parameter scopes: what a step sees and where what it produces goes.

At the top level, parameters live on the run. Inside a branch (a parallel branch, a map element,
a nested dag), what steps produce is kept on the branch's log (``BranchLog.parameters``) and
steps of the branch see the run's parameters overlaid with those of every enclosing branch. So
concurrent branches never overwrite each other; when the composite fans in, the branches' outputs
are merged into the enclosing scope by a deterministic rule (``magnus.composites``).
"""

from __future__ import annotations

from typing import Any

from magnus.internal_names import enclosing_branches
from magnus.parameters.sharing import mark_shared
from magnus.runlog.base import BaseRunLogStore
from magnus.runlog.models import BranchLog


def read_parameters(store: BaseRunLogStore, run_id: str, resolved_name: str) -> dict[str, Any]:
    """The parameters a step (or a composite) at ``resolved_name`` sees.

    The values are shared (:mod:`magnus.parameters.sharing`): never change one in place.
    """
    parameters = store.read_parameters_shared(run_id)
    mark_shared(parameters)
    for branch_name in enclosing_branches(resolved_name):
        branch = store.get_branch_log(branch_name, run_id, full=False)
        if isinstance(branch, BranchLog):
            parameters.update(branch.parameters)
    return parameters


def on_the_run(resolved_name: str) -> bool:
    """Whether what a step at ``resolved_name`` produces goes on the run (it is in no branch)."""
    return not enclosing_branches(resolved_name)


def write_parameters(
    store: BaseRunLogStore, run_id: str, resolved_name: str, produced: dict[str, Any]
) -> None:
    """Record what a step produced in its innermost scope (its branch, or the run)."""
    if not produced:
        return
    branches = enclosing_branches(resolved_name)
    if not branches:
        store.set_parameters(run_id, produced)
        return
    branch = store.get_branch_log(branches[-1], run_id, full=False)
    assert isinstance(branch, BranchLog)
    branch.parameters.update(produced)
    store.add_branch_log(branch, run_id)
