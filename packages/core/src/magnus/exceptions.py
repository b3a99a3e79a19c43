"""Every error magnus raises on purpose.

Each carries a message meant for the user: it names the file, step, service or key at fault. The
command line prints the message alone (no traceback unless ``--log-level DEBUG``).
"""

from __future__ import annotations


class MagnusError(Exception):
    """Base of every error magnus raises deliberately."""


class ConfigurationError(MagnusError):
    """A configuration file or service block is wrong."""


class PipelineValidationError(MagnusError):
    """A pipeline definition has one or more problems; all of them are listed."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        if len(self.problems) == 1:
            super().__init__(f"The pipeline{where} is not valid: {self.problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"The pipeline{where} is not valid ({len(self.problems)} problems):\n{lines}"
        )


class PluginError(MagnusError):
    """A plugin could not be loaded, or two plugins claim the same service name."""


class RunLogExistsError(MagnusError):
    """A run log with this run id already exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"A run with id {run_id!r} already exists in the run log store; choose another run id"
        )


class RunLogNotFoundError(MagnusError):
    """No run log with this run id exists in the store."""

    def __init__(self, run_id: str, where: str = "") -> None:
        self.run_id = run_id
        suffix = f" at {where}" if where else ""
        super().__init__(f"No run log with id {run_id!r} in the run log store{suffix}")


class StepLogNotFoundError(MagnusError):
    """No step log with this internal name exists in the run."""

    def __init__(self, run_id: str, internal_name: str) -> None:
        self.run_id = run_id
        self.internal_name = internal_name
        super().__init__(f"No step log {internal_name!r} in run {run_id!r}")


class BranchLogNotFoundError(MagnusError):
    """No branch log with this internal name exists in the run."""

    def __init__(self, run_id: str, internal_name: str) -> None:
        self.run_id = run_id
        self.internal_name = internal_name
        super().__init__(f"No branch log {internal_name!r} in run {run_id!r}")


class RunLogStoreError(MagnusError):
    """The run log store could not read or write its records."""


class CatalogError(MagnusError):
    """A catalog transfer failed: no file matched, a path escaped its folder, or I/O failed."""


class ParameterError(MagnusError):
    """A parameter is missing, cannot be coerced, or a returned value cannot become parameters."""


class TaskError(MagnusError):
    """A task could not be prepared or run (bad command, import failure, non-zero exit)."""


class SecretNotFoundError(MagnusError):
    """The secrets provider has no secret by that name."""

    def __init__(self, name: str, provider: str) -> None:
        self.name = name
        self.provider = provider
        super().__init__(f"No secret named {name!r} in the {provider} secrets provider")


class ExecutionFailedError(MagnusError):
    """The run finished with status FAIL."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"Execution failed for run id: {run_id}")


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM) while it ran.

    A ``KeyboardInterrupt``, so that code which handles Ctrl-C handles SIGTERM the same way.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        try:
            self.signal_name = signal.Signals(signum).name
        except ValueError:
            self.signal_name = f"signal {signum}"
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


class NoRunContextError(MagnusError):
    """An interaction API function was called outside a running magnus step."""
