"""Fixtures for the argo executor's tests: rendering a pipeline and checking the workflow."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_argo.argo_helpers import (
    REPO,
    SCHEMA_PATH,
    Renderer,
    hera_round_trip,
    prepare_run,
    schema_errors,
    strict_schema,
    validator_for_kind,
)


@pytest.fixture(scope="session")
def published_schema() -> dict[str, Any]:
    """Argo's JSON schema exactly as published."""
    assert SCHEMA_PATH.is_file(), f"Argo's workflow schema is missing: {SCHEMA_PATH}"
    return json.loads(SCHEMA_PATH.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def strict_validators(published_schema: dict[str, Any]) -> dict[str, Any]:
    """Strict validators by kind."""
    schema = strict_schema(published_schema)
    return {kind: validator_for_kind(schema, kind) for kind in ("Workflow", "CronWorkflow")}


@pytest.fixture
def check_workflow(strict_validators: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Assert a rendered document is a valid Argo resource, by the strict schema and hera."""

    def check(document: dict[str, Any]) -> None:
        validator = strict_validators[document["kind"]]
        errors = schema_errors(validator, document)
        assert not errors, "the strict schema rejects the workflow:\n" + "\n".join(errors)
        assert hera_round_trip(document) == document, "hera's models drop or change keys"

    return check


@pytest.fixture(autouse=True)
def _magnus_logs_at_warning() -> Iterator[None]:
    """Containers log at the level magnus logs at where it renders: fixed, so renders compare."""
    logger = logging.getLogger("magnus")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work from the repository root, where the examples' relative paths hold."""
    monkeypatch.chdir(REPO)
    return REPO


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write a mapping as a YAML file in the test's folder; returns its path."""

    def write(name: str, content: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    return write


@pytest.fixture
def render_context(in_repo: Path, write_yaml: Callable[[str, Any], Path]) -> Callable[..., Any]:
    """The run context of a pipeline under an argo configuration (see ``render``)."""

    def build(
        pipeline: str | Path | dict[str, Any],
        executor: dict[str, Any] | None = None,
        *,
        config_file: str | Path | None = None,
        parameters_file: str = "",
        tag: str = "",
    ) -> Any:
        if isinstance(pipeline, dict):
            pipeline = write_yaml("pipeline.yaml", {"dag": pipeline})
        if config_file is None:
            config = {"executor": {"type": "argo", "config": executor or {"image": "img:1"}}}
            config_file = write_yaml("argo.yaml", config)
        return prepare_run(pipeline, config_file, parameters_file, tag)

    return build


@pytest.fixture
def render(
    render_context: Callable[..., Any], check_workflow: Callable[[dict[str, Any]], None]
) -> Renderer:
    """Render a pipeline, check the workflow by both checks, return it as a mapping.

    ``pipeline``: a path, or a ``dag`` mapping (written to a file); ``executor``: the argo
    executor's ``config`` mapping (written to a configuration file), or ``config_file=``.
    """

    def run(pipeline: str | Path | dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        prepared = render_context(pipeline, *args, **kwargs)
        document = yaml.safe_load(prepared.executor.render(prepared.context))
        check_workflow(document)
        return document  # type: ignore[no-any-return]

    return run
