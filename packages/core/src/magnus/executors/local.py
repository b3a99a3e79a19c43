"""The ``local`` executor: traverses on this machine; branches optionally in parallel processes.

With ``enable_parallel``, each branch of a parallel step and each element of a map runs in its own
OS process, started as ``python -m magnus execute_single_branch ...`` with the running interpreter:
the same entry point an orchestrator calls, so a laptop exercises the path a cluster takes. At
most ``max_workers`` run at once. A child rebuilds the pipeline from ``run_config.dag``, so SDK
pipelines work too.
"""

from __future__ import annotations

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
from magnus.naming import to_command_line
from magnus.runlog.models import FAIL, SUCCESS, BranchLog

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
        children: dict[str, subprocess.Popen[bytes]] = {}
        guard = threading.Lock()
        stopping = threading.Event()

        def run_one(run: BranchRun) -> None:
            if stopping.is_set():
                return
            command = self._branch_command(context, run)
            with guard:
                process = subprocess.Popen(command, start_new_session=True)
                children[run.name] = process
            returncode = process.wait()
            self._check_branch(context, run, returncode)

        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(runs)))
        futures = [pool.submit(run_one, run) for run in runs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C (or any failure here): stop every child, leave the log as it is.
            stopping.set()
            with guard:
                self._stop(list(children.values()))
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _branch_command(self, context: RunContext, run: BranchRun) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "magnus.cli",
            "execute_single_branch",
            context.run_id,
            to_command_line(run.graph.internal_branch_name),
            "--map-variable",
            json.dumps(run.map_variables),
            "--log-level",
            logging.getLevelName(logging.getLogger("magnus").getEffectiveLevel()),
        ]
        if context.configuration_file:
            command += ["--config-file", context.configuration_file]
        if context.tag:
            command += ["--tag", context.tag]
        return command

    def _check_branch(self, context: RunContext, run: BranchRun, returncode: int) -> None:
        """A child that died before its branch ended leaves a FAIL branch saying so."""
        store = context.run_log_store
        branch = store.get_branch_log(run.name, context.run_id, full=False)
        assert isinstance(branch, BranchLog)
        # Status 1 is the child's way of saying "the branch failed"; anything else is a crash.
        if branch.status in (SUCCESS, FAIL) and returncode in (0, 1):
            return
        branch.status = FAIL
        branch.message = f"the process running branch {run.name} {_exit_description(returncode)}"
        store.add_branch_log(branch, context.run_id)
        logger.error(branch.message)

    @staticmethod
    def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=_TERMINATE_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
