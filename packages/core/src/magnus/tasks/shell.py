"""The built-in ``shell`` task type: runs a command with ``/bin/sh -c``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any, ClassVar

from magnus import parameters as params_mod
from magnus.exceptions import TaskError
from magnus.tasks.base import BaseTaskType, TaskInput, scope_environment
from magnus.tasks.environment import environment_without_exports
from magnus.tracking.metrics import collect_environment_metrics

_ENV_DUMP = "MAGNUS_ENV_DUMP_FILE"


class ShellTaskType(BaseTaskType):
    """Runs ``command`` with ``/bin/sh -c``; stdout and stderr go to the execution log.

    Parameters arrive as ``MAGNUS_PRM_<name>`` (JSON text); exporting ``MAGNUS_PRM_<name>``
    sets a parameter. A non-zero exit status fails the step (plain shell semantics: as in 0.5,
    only the last command's status counts unless the command uses ``set -e``).
    """

    service_name: ClassVar[str] = "shell"

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        task_input.consumed = self.consumes(task_input)
        inputs = params_mod.to_environment(task_input.parameters)
        env = {**environment_without_exports(), **inputs}
        env.update(scope_environment(task_input))
        fd, dump_path = tempfile.mkstemp(prefix="magnus-env-")
        os.close(fd)
        env[_ENV_DUMP] = dump_path
        # The EXIT trap records the exported environment however the command ends, without
        # printing it into the execution log as 0.5's trailing `env | grep MAGNUS` did.
        script = f"trap 'env -0 > \"${_ENV_DUMP}\"' EXIT\n{self.command.strip()}\n"
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", script],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert process.stdout is not None
            console = task_input.console_out or sys.stdout
            for line in process.stdout:
                task_input.output.write(line)
                console.write(line)
            returncode = process.wait()
            with open(dump_path, encoding="utf-8", errors="replace") as dump:
                pairs = [item.partition("=") for item in dump.read().split("\0") if item]
        finally:
            os.unlink(dump_path)
        exported = {key: value for key, _, value in pairs}
        task_input.metrics = collect_environment_metrics(exported)
        if returncode != 0:
            raise TaskError(f"Command failed with exit status {returncode}")
        return params_mod.changed_in_environment(inputs, exported)
