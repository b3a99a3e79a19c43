"""The hook implementations magnus loads through the ``magnus`` entry point ``argo``.

Loading the plugin does not load hera: only rendering a workflow does.
"""

from __future__ import annotations

import posixpath
import string

from magnus import hookimpl
from magnus.config import collect_variables
from magnus.executors.base import BaseExecutor
from magnus.integration import Problem
from magnus.services import BaseService
from magnus_executor_argo.executor import ArgoExecutor


@hookimpl
def register_executors() -> list[type[BaseExecutor]]:
    """The ``argo`` executor."""
    return [ArgoExecutor]


#: services that keep their data in a local folder: (service_type, service_name) -> field
_LOCAL_FOLDERS = {
    ("run_log_store", "file-system"): "log_folder",
    ("run_log_store", "chunked-fs"): "log_folder",
    ("catalog", "file-system"): "catalog_location",
}


@hookimpl
def check_compatibility(executor: BaseExecutor, service: BaseService) -> list[Problem] | None:
    """Refuse services whose data would stay in one pod.

    Every step of an Argo workflow runs in a pod of its own, so a run log store or a catalog
    kept in a local folder only works when that folder is on a volume every pod mounts. (A
    run log kept in memory is refused by magnus' own rule for executors whose steps run in
    other processes.)
    """
    if not isinstance(executor, ArgoExecutor):
        return None
    field = _LOCAL_FOLDERS.get((service.service_type, service.service_name))
    if field is None:
        return None
    folder = str(getattr(service, field))
    if _on_shared_volume(executor, folder):
        return []
    kind = service.service_type.replace("_", " ")
    return [
        Problem.error(
            f"The {service.service_name!r} {kind} keeps its data in {folder!r}, which the pods "
            f"of the {executor.service_name!r} executor do not share: mount a "
            "PersistentVolumeClaim in every pod with the executor's persistent_volumes "
            f"(e.g. [{{name: <claim>, mount_path: /mnt}}]) and set {field} to an absolute "
            "path under its mount_path (e.g. /mnt/...), or use a store on object storage "
            "(s3, chunked-s3)"
        )
    ]


def _on_shared_volume(executor: ArgoExecutor, folder: str) -> bool:
    """Whether ``folder`` (absolute) lies in one of the executor's persistent volumes."""
    variables = collect_variables()

    def fill(text: str) -> str:
        # Placeholders are filled for real at render time; unknown ones fail there, not here.
        return string.Template(text).safe_substitute(variables)

    path = posixpath.normpath(fill(folder))
    if not path.startswith("/"):
        return False  # relative to a working directory that no two pods share
    for volume in executor.persistent_volumes:
        mount = posixpath.normpath(fill(volume.mount_path))
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return True
    return False
