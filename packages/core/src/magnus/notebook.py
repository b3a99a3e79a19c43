"""The ``notebook`` task type at its old import path; see :mod:`magnus.tasks.notebook`."""

from magnus.tasks.notebook import (
    DEFAULT_KERNEL,
    INSTALL_HINT,
    NOTEBOOK_SUFFIX,
    NotebookTaskType,
    default_output_path,
    output_path_in_map,
)

__all__ = [
    "DEFAULT_KERNEL",
    "INSTALL_HINT",
    "NOTEBOOK_SUFFIX",
    "NotebookTaskType",
    "default_output_path",
    "output_path_in_map",
]
