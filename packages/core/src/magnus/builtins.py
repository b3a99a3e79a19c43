"""magnus' own services and node kinds, registered through the same hooks as any third party's.

The host registers them like any plugin; the classes are imported here, at the composition root,
because the plugin manager asks for every family as soon as it is used.
"""

from __future__ import annotations

from magnus.catalog import DoNothingCatalog, FileSystemCatalog
from magnus.composites import DagNode, MapNode, ParallelNode
from magnus.control_flow import ConditionalNode, LoopNode
from magnus.executors.base import BaseExecutor
from magnus.executors.local import LocalExecutor
from magnus.executors.mocked import MockedExecutor
from magnus.integration import Problem
from magnus.markers import hookimpl
from magnus.nodes import FailNode, StubNode, SuccessNode, TaskNode
from magnus.objects import JsonSerializer, PickleSerializer
from magnus.runlog.buffered import BufferedRunLogStore
from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
from magnus.runlog.filesystem import FileSystemRunLogStore
from magnus.secrets import DoNothingSecrets, DotenvSecrets, EnvSecretsManager
from magnus.services import BaseService
from magnus.tasks import NotebookTaskType, PythonTaskType, ShellTaskType
from magnus.tracking import DoNothingTracker


@hookimpl
def register_executors() -> list[type]:
    return [LocalExecutor, MockedExecutor]


@hookimpl
def register_run_log_stores() -> list[type]:
    return [BufferedRunLogStore, FileSystemRunLogStore, ChunkedFileSystemRunLogStore]


@hookimpl
def register_catalogs() -> list[type]:
    return [DoNothingCatalog, FileSystemCatalog]


@hookimpl
def register_secrets() -> list[type]:
    return [DoNothingSecrets, DotenvSecrets, EnvSecretsManager]


@hookimpl
def register_experiment_trackers() -> list[type]:
    return [DoNothingTracker]


@hookimpl
def register_object_serializers() -> list[type]:
    return [PickleSerializer, JsonSerializer]


@hookimpl
def register_node_types() -> list[type]:
    return [
        TaskNode,
        StubNode,
        SuccessNode,
        FailNode,
        ParallelNode,
        MapNode,
        DagNode,
        ConditionalNode,
        LoopNode,
    ]


@hookimpl
def register_task_types() -> list[type]:
    return [PythonTaskType, ShellTaskType, NotebookTaskType]


@hookimpl
def check_compatibility(executor: BaseExecutor, service: BaseService) -> list[Problem]:
    problems = []
    in_memory = service.service_type == "run_log_store" and not getattr(service, "persistent", True)
    if in_memory and not executor.runs_in_one_process:
        problems.append(
            Problem.error(
                f"The {service.service_name!r} run log store keeps the log in memory and "
                f"cannot be used with the {executor.service_name!r} executor, whose steps "
                "run in other processes; use chunked-fs or file-system"
            )
        )
    concurrent = getattr(service, "supports_concurrent_writers", True)
    if not in_memory and not concurrent and not executor.runs_in_one_process:
        problems.append(
            Problem.error(
                f"The {service.service_name!r} run log store cannot take writes from several "
                f"processes at once, which the {executor.service_name!r} executor makes "
                "(enable_parallel); use chunked-fs"
            )
        )
    if service.service_type == "catalog" and service.service_name == "do-nothing":
        problems.append(Problem.warning("The do-nothing catalog cannot pass data between steps"))
    return problems
