"""The ``local`` executor: traverses on this machine; branches optionally in parallel processes.

With ``enable_parallel``, each branch of a parallel step and each element of a map runs in its own
OS process, started as ``python -m magnus execute_single_branch ...`` with the running interpreter:
the same entry point an orchestrator calls, so a laptop exercises the path a cluster takes. At
most ``max_workers`` run at once. A child rebuilds the pipeline from ``run_config.dag``, so SDK
pipelines work too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from magnus.executors.base import BaseExecutor
from magnus.executors.rerun import reusable_branch
from magnus.internal_names import to_command_line
from magnus.interrupts import block_for_children, forget_child, signal_of, watch_child
from magnus.orchestration import EXECUTE_SINGLE_BRANCH, FAILURES_ONLY_ENV, callback_command
from magnus.runlog.models import FAIL, SUCCESS, BranchLog
from magnus.tasks.environment import environment_without_exports

if TYPE_CHECKING:
    from magnus.composites import BranchRun, CompositeNode
    from magnus.context import RunContext

logger = logging.getLogger(__name__)

_TERMINATE_GRACE_SECONDS = 10


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class LocalExecutor(BaseExecutor):
    """Runs the pipeline on this machine."""

    service_name: ClassVar[str] = "local"

    enable_parallel: bool = False
    max_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    overrides: dict[str, dict[str, object]] = Field(default_factory=dict)

    @property
    def runs_in_one_process(self) -> bool:
        return not self.enable_parallel

    def run_branches(self, context: RunContext, node: CompositeNode, runs: list[BranchRun]) -> None:
        if not self.enable_parallel or len(runs) < 2:
            super().run_branches(context, node, runs)
            return
        runs = self._runs_needing_a_process(context, node, runs)
        if not runs:
            return
        children: dict[str, subprocess.Popen[bytes]] = {}
        guard = threading.Lock()
        stopping = threading.Event()

        def run_one(run: BranchRun) -> None:
            block_for_children()
            command = self._branch_command(context, run)
            with guard:
                if stopping.is_set():
                    return  # left PROCESSING: the stopping run closes it
                # A session of its own: Ctrl-C on the terminal reaches this process only, which
                # passes it on, so each child ends its branch before the run ends.
                process = subprocess.Popen(
                    command,
                    start_new_session=True,
                    env={**environment_without_exports(), FAILURES_ONLY_ENV: "1"},
                )
                children[run.name] = process
                watch_child(process.pid)
            returncode = process.wait()
            forget_child(process.pid)
            status = self._check_branch(context, run, returncode)
            context.observers.after_branch(
                branch_name=run.name, status=status, node=node, context=context
            )

        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(runs)))
        futures = [pool.submit(run_one, run) for run in runs]
        try:
            for future in futures:
                future.result()
        except BaseException as error:
            # Ctrl-C, SIGTERM (or any failure here): pass the signal on to every child, which
            # ends its branch FAIL saying so, and wait for them before the run ends.
            with guard:
                stopping.set()
                self._stop(list(children.values()), signal_of(error))
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _runs_needing_a_process(
        self, context: RunContext, node: CompositeNode, runs: list[BranchRun]
    ) -> list[BranchRun]:
        """Record here the branches a re-run reuses whole; return the others, to start.

        A reused branch runs no user code: its process would only record each step reused,
        which this process does the same way, without the cost of starting an interpreter.
        """
        if not context.use_cached:
            return runs

        reused = [run for run in runs if reusable_branch(context, run.graph, run.map_variables)]
        if not reused:
            return runs
        super().run_branches(context, node, reused)
        done = {id(run) for run in reused}
        return [run for run in runs if id(run) not in done]

    def _branch_command(self, context: RunContext, run: BranchRun) -> list[str]:
        return callback_command(
            [sys.executable, "-m", "magnus.cli"],
            EXECUTE_SINGLE_BRANCH,
            context.run_id,
            to_command_line(run.graph.internal_branch_name),
            log_level=logging.getLevelName(logging.getLogger("magnus").getEffectiveLevel()),
            map_variable=json.dumps(run.map_variables),
            configuration_file=context.configuration_file,
            tag=context.tag,
        )

    def _check_branch(self, context: RunContext, run: BranchRun, returncode: int) -> str:
        """A child that died before its branch ended leaves a FAIL branch saying so.

        Returns the branch's status."""
        store = context.run_log_store
        branch = store.get_branch_log(run.name, context.run_id, full=False)
        assert isinstance(branch, BranchLog)
        # Status 1 is the child's way of saying "the branch failed"; anything else is a crash,
        # unless the child ended its branch FAIL itself and said why (it was stopped).
        if branch.status in (SUCCESS, FAIL) and returncode in (0, 1):
            return branch.status
        if branch.status == FAIL and branch.message:
            return FAIL
        branch.status = FAIL
        branch.message = f"the process running branch {run.name} {_exit_description(returncode)}"
        store.add_branch_log(branch, context.run_id)
        logger.error(branch.message)
        return FAIL

    @staticmethod
    def _stop(processes: list[subprocess.Popen[bytes]], signum: int) -> None:
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signum)
        for process in processes:
            try:
                process.wait(timeout=_TERMINATE_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
