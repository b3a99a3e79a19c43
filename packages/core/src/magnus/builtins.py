"""magnus' own services, registered through the same hooks as any third-party plugin.

Classes are imported inside each hook so that importing magnus stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magnus.hookspecs import hookimpl
from magnus.integration import Problem

if TYPE_CHECKING:
    from magnus.executors.base import BaseExecutor
    from magnus.services import BaseService


@hookimpl
def register_executors() -> list[type]:
    from magnus.executors.local import LocalExecutor
    from magnus.executors.mocked import MockedExecutor

    return [LocalExecutor, MockedExecutor]


@hookimpl
def register_run_log_stores() -> list[type]:
    from magnus.runlog.buffered import BufferedRunLogStore
    from magnus.runlog.chunked import ChunkedFileSystemRunLogStore
    from magnus.runlog.filesystem import FileSystemRunLogStore

    return [BufferedRunLogStore, FileSystemRunLogStore, ChunkedFileSystemRunLogStore]


@hookimpl
def register_catalogs() -> list[type]:
    from magnus.catalog import DoNothingCatalog, FileSystemCatalog

    return [DoNothingCatalog, FileSystemCatalog]


@hookimpl
def register_secrets() -> list[type]:
    from magnus.secrets import DoNothingSecrets, DotenvSecrets, EnvSecretsManager

    return [DoNothingSecrets, DotenvSecrets, EnvSecretsManager]


@hookimpl
def register_experiment_trackers() -> list[type]:
    from magnus.tracking import DoNothingTracker

    return [DoNothingTracker]


@hookimpl
def register_object_serializers() -> list[type]:
    from magnus.objects import JsonSerializer, PickleSerializer

    return [PickleSerializer, JsonSerializer]


@hookimpl
def register_task_types() -> list[type]:
    from magnus.notebook import NotebookTaskType
    from magnus.tasks import PythonTaskType, ShellTaskType

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
