"""Task output capture at its old import path; see :mod:`magnus.tasks.output`."""

from magnus.tasks.output import task_output

__all__ = ["task_output"]
