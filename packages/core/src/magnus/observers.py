"""The observer relay: typed calls to the observer hooks, each implementation isolated.

The engine tells observers what happens through ``context.observers.before_step(...)`` rather
than a hook name in a string, so a typo or a wrong argument is a type error, not a silent no-op.

pluggy stops at the first implementation that raises; an observer must never change a run's
outcome nor keep other observers from seeing it, so the relay calls each implementation on its
own and reports one that raises as a warning.

This module sits below the plugin manager: it takes pluggy's hook relay, not the manager. It is
generic in the run context's type for the same reason: the context holds the relay, so the relay
cannot import the context.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pluggy import HookCaller, HookRelay

    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog

logger = logging.getLogger(__name__)

ContextT = TypeVar("ContextT")


class Observers(Generic[ContextT]):
    """One method per observer hook (``magnus.hookspecs.ObserverSpecs``), same arguments."""

    def __init__(self, hook: HookRelay, trace: bool = False) -> None:
        """``hook`` is the plugin manager's hook relay; ``trace`` logs each call at DEBUG."""
        self._hook = hook
        self._trace = trace

    def before_run(self, run_log: RunLog, context: ContextT) -> None:
        """A new run's log exists; no step has run."""
        self._each(self._hook.before_run, run_log=run_log, context=context)

    def after_run(self, run_log: RunLog, context: ContextT) -> None:
        """The top-level traversal ended (or the run was stopped and ended FAIL)."""
        self._each(self._hook.after_run, run_log=run_log, context=context)

    def after_run_reads_the_log(self) -> bool:
        """Whether an ``after_run`` implementation takes ``run_log`` (and so needs it whole)."""
        return any("run_log" in impl.argnames for impl in self._hook.after_run.get_hookimpls())

    def before_step(self, step_log: StepLog, node: BaseNode, context: ContextT) -> None:
        """A leaf step is about to make its first attempt."""
        self._each(self._hook.before_step, step_log=step_log, node=node, context=context)

    def after_step(self, step_log: StepLog, node: BaseNode, context: ContextT) -> None:
        """A leaf step finished its attempts; its log is not stored yet."""
        self._each(self._hook.after_step, step_log=step_log, node=node, context=context)

    def on_step_error(
        self, step_log: StepLog, node: BaseNode, error: BaseException, context: ContextT
    ) -> None:
        """An attempt of a leaf step failed with ``error``."""
        self._each(
            self._hook.on_step_error, step_log=step_log, node=node, error=error, context=context
        )

    def before_composite(
        self, step_log: StepLog, node: BaseNode, branches: int, context: ContextT
    ) -> None:
        """A composite step fanned out ``branches`` branches; none has run."""
        self._each(
            self._hook.before_composite,
            step_log=step_log,
            node=node,
            branches=branches,
            context=context,
        )

    def after_branch(
        self, branch_name: str, status: str, node: BaseNode, context: ContextT
    ) -> None:
        """A branch of the composite ``node`` ended with ``status``."""
        self._each(
            self._hook.after_branch,
            branch_name=branch_name,
            status=status,
            node=node,
            context=context,
        )

    def after_composite(self, step_log: StepLog, node: BaseNode, context: ContextT) -> None:
        """A composite step's branches all ended; its status is decided."""
        self._each(self._hook.after_composite, step_log=step_log, node=node, context=context)

    def _each(self, caller: HookCaller, **kwargs: Any) -> None:
        # pluggy calls the last registered first; so does the relay.
        for impl in reversed(caller.get_hookimpls()):
            if self._trace:
                logger.debug("hook %s -> %s", caller.name, impl.plugin_name)
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                logger.warning(
                    "Plugin %r failed in %s: %s: %s",
                    impl.plugin_name,
                    caller.name,
                    type(exc).__name__,
                    exc,
                )
