"""magnus: compute-agnostic data science pipelines with a reproducible run log.

The public face: the SDK (``Pipeline``, ``PythonTask``, ``ShellTask``, ...), the interaction API
used inside running steps (``get_parameter``, ``put_in_catalog``, ...), and ``hookimpl`` for
plugin authors. Names are resolved lazily so that ``import magnus`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Type checkers see the marker itself; at run time it is loaded on first use, like the rest.
    from magnus.markers import hookimpl as hookimpl

__version__ = "0.6.0"

_LAZY: dict[str, str] = {
    # plugin API: pluggy is loaded only by what uses it
    "hookimpl": "magnus.markers",
    # SDK
    "Pipeline": "magnus.sdk",
    "PythonTask": "magnus.sdk",
    "ShellTask": "magnus.sdk",
    "NotebookTask": "magnus.sdk",
    "Task": "magnus.sdk",
    "Stub": "magnus.sdk",
    "Parallel": "magnus.sdk",
    "Map": "magnus.sdk",
    "Conditional": "magnus.sdk",
    "Loop": "magnus.sdk",
    "Dag": "magnus.sdk",
    "Success": "magnus.sdk",
    "Fail": "magnus.sdk",
    "Catalog": "magnus.sdk",
    "PythonJob": "magnus.sdk",
    "ShellJob": "magnus.sdk",
    "NotebookJob": "magnus.sdk",
    # interaction API
    "get_parameter": "magnus.interaction",
    "get_parameters": "magnus.interaction",
    "set_parameter": "magnus.interaction",
    "get_run_id": "magnus.interaction",
    "get_run_log": "magnus.interaction",
    "get_tag": "magnus.interaction",
    "get_loop_iteration": "magnus.interaction",
    "put_in_catalog": "magnus.interaction",
    "get_from_catalog": "magnus.interaction",
    "put_object": "magnus.interaction",
    "get_object": "magnus.interaction",
    "get_secret": "magnus.interaction",
    "track_this": "magnus.interaction",
    "get_experiment_tracker_context": "magnus.interaction",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'magnus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
