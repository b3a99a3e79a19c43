"""Services whose data would stay in one pod are refused at render time, with a clear message."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from magnus_executor_argo.executor import ArgoExecutor

from magnus.exceptions import ConfigurationError
from magnus.integration import collect_problems
from magnus.plugins import get_plugins
from magnus.services import BaseService

SHARED = {"image": "i", "persistent_volumes": [{"name": "claim", "mount_path": "/mnt"}]}


def _service(kind: str, name: str, config: dict[str, Any]) -> BaseService:
    return get_plugins().service_class(kind, name).from_config(config)  # type: ignore[no-any-return]


def _errors(executor_config: dict[str, Any], service: BaseService) -> list[str]:
    executor = ArgoExecutor.from_config(executor_config)
    problems = collect_problems(get_plugins(), executor, [service])
    return [p.message for p in problems if p.level == "error"]


@pytest.mark.parametrize(
    ("kind", "name", "field"),
    [
        ("run_log_store", "chunked-fs", "log_folder"),
        ("run_log_store", "file-system", "log_folder"),
        ("catalog", "file-system", "catalog_location"),
    ],
)
def test_a_local_folder_without_a_shared_volume_is_refused(
    kind: str, name: str, field: str
) -> None:
    errors = _errors({"image": "i"}, _service(kind, name, {field: "/mnt/data"}))
    assert len(errors) == 1
    assert f"The {name!r} {kind.replace('_', ' ')}" in errors[0]
    assert "persistent_volumes" in errors[0]
    assert f"set {field} to an absolute path under its mount_path" in errors[0]


@pytest.mark.parametrize(
    ("folder", "refused"),
    [
        ("/mnt/run_logs", False),
        ("/mnt", False),
        ("/mnt/deep/er/", False),
        ("/mnt2/run_logs", True),  # not inside /mnt
        ("/data/run_logs", True),
        (".run_log_store", True),  # relative: pods share no working directory
        ("mnt/run_logs", True),
    ],
)
def test_a_folder_on_a_persistent_volume_is_fine(folder: str, refused: bool) -> None:
    errors = _errors(SHARED, _service("run_log_store", "chunked-fs", {"log_folder": folder}))
    assert bool(errors) is refused


def test_variables_are_filled_before_comparing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGNUS_VAR_mount", "/shared")
    config = {"image": "i", "persistent_volumes": [{"name": "c", "mount_path": "$mount"}]}
    service = _service("catalog", "file-system", {"catalog_location": "/shared/catalog"})
    assert _errors(config, service) == []


def test_the_buffered_store_is_refused() -> None:
    # magnus' own rule for executors whose steps run in other processes.
    errors = _errors(SHARED, _service("run_log_store", "buffered", {}))
    assert len(errors) == 1
    assert "'buffered' run log store keeps the log in memory" in errors[0]
    assert "'argo' executor" in errors[0]


class _ObjectStore(BaseService):
    service_type: ClassVar[str] = "run_log_store"
    service_name: ClassVar[str] = "chunked-s3"
    bucket: str = "b"


def test_object_storage_is_fine() -> None:
    assert _errors({"image": "i"}, _ObjectStore()) == []


def test_other_executors_are_not_concerned() -> None:
    from magnus.executors.local import LocalExecutor

    service = _service("run_log_store", "chunked-fs", {"log_folder": ".run_log_store"})
    assert collect_problems(get_plugins(), LocalExecutor(), [service]) == []


def test_the_run_is_refused_before_rendering(render_context: Any, write_yaml: Any) -> None:
    from magnus import entrypoints

    config = write_yaml(
        "config.yaml",
        {
            "executor": {"type": "argo", "config": {"image": "i"}},
            "run_log_store": {"type": "chunked-fs"},
            "catalog": {"type": "file-system"},
        },
    )
    prepared = render_context("examples/python-tasks.yaml", config_file=config)
    with pytest.raises(ConfigurationError, match="Incompatible configuration") as error:
        entrypoints.check_compatibility(prepared)
    message = str(error.value)
    assert "'chunked-fs' run log store keeps its data in '.run_log_store'" in message
    assert "'file-system' catalog keeps its data in '.catalog'" in message
