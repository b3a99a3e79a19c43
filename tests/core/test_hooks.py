"""Observer and integration hooks seen from a real run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from magnus import Pipeline, PythonTask, ShellTask, Stub, hookimpl
from magnus.exceptions import ConfigurationError
from magnus.executors.local import LocalExecutor
from magnus.integration import Problem
from magnus.plugins import get_plugins


class Recorder:
    """Implements every observer and integration hook and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def before_run(self, run_log: Any, context: Any) -> None:
        assert context.run_id == run_log.run_id
        self.calls.append(("before_run", run_log.status))

    @hookimpl
    def after_run(self, run_log: Any) -> None:
        self.calls.append(("after_run", run_log.status))

    @hookimpl
    def before_step(self, step_log: Any, node: Any) -> None:
        assert step_log.internal_name == node.internal_name
        self.calls.append(("before_step", step_log.internal_name))

    @hookimpl
    def after_step(self, step_log: Any) -> None:
        self.calls.append(("after_step", f"{step_log.internal_name}:{step_log.status}"))

    @hookimpl
    def on_step_error(self, step_log: Any, error: BaseException) -> None:
        self.calls.append(("on_step_error", f"{step_log.internal_name}:{type(error).__name__}"))

    @hookimpl
    def check_compatibility(self, executor: Any, service: Any) -> list[Problem]:
        self.calls.append(("check_compatibility", service.service_type))
        return []

    @hookimpl
    def configure_for_traversal(self, executor: Any, service: Any) -> None:
        self.calls.append(("configure_for_traversal", service.service_type))

    @hookimpl
    def configure_for_execution(self, executor: Any, service: Any) -> None:
        self.calls.append(("configure_for_execution", service.service_type))


@pytest.fixture
def recorder() -> Any:
    plugins = get_plugins()
    recorder = Recorder()
    plugins.register(recorder, "recorder")
    yield recorder
    plugins.unregister("recorder")


def test_every_observer_sees_the_run(project: Path, recorder: Recorder, user_module: Any) -> None:
    user_module("hooked", "def explode():\n    raise KeyError('nope')\n")
    pipeline = Pipeline(
        steps=[
            Stub(name="first"),
            PythonTask(
                name="second", function="hooked.explode", max_attempts=2, on_failure="third"
            ),
            ShellTask(name="third", command="true"),
        ]
    )
    run_log = pipeline.execute(run_id="hooks")
    assert run_log is not None and run_log.status == "SUCCESS"
    services = ["run_log_store", "catalog", "secrets", "experiment_tracker"]
    assert recorder.calls == [
        *[("check_compatibility", s) for s in services],
        *[("configure_for_traversal", s) for s in services],
        *[("configure_for_execution", s) for s in services],
        ("before_run", "PROCESSING"),
        ("before_step", "first"),
        ("after_step", "first:SUCCESS"),
        ("before_step", "second"),
        ("on_step_error", "second:KeyError"),
        ("on_step_error", "second:KeyError"),
        ("after_step", "second:FAIL"),
        ("before_step", "third"),
        ("after_step", "third:SUCCESS"),
        ("before_step", "success"),
        ("after_step", "success:SUCCESS"),
        ("after_run", "SUCCESS"),
    ]
    assert run_log.steps["second"].attempts[1].message == "KeyError: 'nope'"


def test_observers_hear_of_a_run_stopped_mid_step(
    project: Path, recorder: Recorder, user_module: Any
) -> None:
    user_module("stopping", "def stop():\n    raise KeyboardInterrupt\n")
    pipeline = Pipeline(
        steps=[Stub(name="first"), PythonTask(name="second", function="stopping.stop")]
    )

    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(run_id="stopped")

    steps = [call for call in recorder.calls if call[0] in ("before_step", "after_step")]
    assert steps == [
        ("before_step", "first"),
        ("after_step", "first:SUCCESS"),
        ("before_step", "second"),
    ]
    # The run was ended FAIL, saying why, before observers heard of it: once.
    assert recorder.calls[-1] == ("after_run", "FAIL")
    assert [call for call in recorder.calls if call[0] == "after_run"] == [("after_run", "FAIL")]


class _StatusOnly:
    def __init__(self) -> None:
        self.heard: list[str] = []

    @hookimpl
    def after_run(self, context: Any) -> None:
        self.heard.append(context.run_id)


def _run_from_the_command_line(project: Path, run_id: str) -> Any:
    """``magnus execute`` of a two-step pipeline, in this process: its run log as returned."""
    from magnus import entrypoints
    from magnus.console import run_with_reporter

    (project / "two.yaml").write_text(
        "dag:\n  start_at: a\n  steps:\n    a: {type: stub, next: b}\n"
        "    b: {type: stub, next: success}\n    success: {type: success}\n"
        "    fail: {type: fail}\n"
    )
    run = entrypoints.prepare_run(pipeline_file="two.yaml", run_id=run_id)
    return run_with_reporter(run, summary=False, whole_log=False)


def test_the_run_is_read_back_whole_only_for_an_after_run_that_takes_it(
    project: Path, recorder: Recorder
) -> None:
    # The recorder's after_run takes run_log: it gets the whole run.
    whole = _run_from_the_command_line(project, "taken")
    assert recorder.calls[-1] == ("after_run", "SUCCESS")
    assert list(whole.steps) == ["a", "b", "success"]
    # Without it, the command line gets the run-level record alone, and an after_run that
    # takes only the context is still called.
    plugins = get_plugins()
    plugins.unregister("recorder")
    status_only = _StatusOnly()
    plugins.register(status_only, "status-only")
    try:
        head = _run_from_the_command_line(project, "not-taken")
    finally:
        plugins.unregister("status-only")
        plugins.register(recorder, "recorder")
    assert head.status == "SUCCESS" and head.steps == {}
    assert status_only.heard == ["not-taken"]


class _Blocker:
    @hookimpl
    def check_compatibility(self, service: Any) -> list[Problem]:
        if service.service_type == "catalog":
            return [Problem.error("this catalog is not allowed here")]
        return []


def test_an_integration_error_stops_the_run_before_anything_is_written(project: Path) -> None:
    plugins = get_plugins()
    plugins.register(_Blocker(), "blocker")
    try:
        with pytest.raises(ConfigurationError, match="this catalog is not allowed here"):
            Pipeline(steps=[Stub(name="a")]).execute(run_id="blocked")
    finally:
        plugins.unregister("blocker")
    assert not (project / ".run_log_store").exists()


class _RemoteExecutor(LocalExecutor):
    service_name: ClassVar[str] = "remote-test"
    runs_in_one_process: ClassVar[bool] = False


class _RemotePlugin:
    @hookimpl
    def register_executors(self) -> list[type]:
        return [_RemoteExecutor]


def test_the_buffered_store_is_refused_where_steps_run_elsewhere(project: Path) -> None:
    plugins = get_plugins()
    plugins.register(_RemotePlugin(), "remote")
    (project / "remote.yaml").write_text(
        "executor: {type: remote-test}\nrun_log_store: {type: buffered}\n"
    )
    from magnus import entrypoints

    try:
        prepared = entrypoints.prepare_run(
            configuration_file="remote.yaml", pipeline_file="examples/on-failure.yaml"
        )
        with pytest.raises(ConfigurationError, match=r"'buffered' run log store .* 'remote-test'"):
            entrypoints.check_compatibility(prepared)
    finally:
        plugins.unregister("remote")
