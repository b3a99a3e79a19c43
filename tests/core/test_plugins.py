"""The plugin system: hookspecs documented and exercised, discovery, blocking, duplicates."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from magnus import hookimpl, hookspecs, markers
from magnus.catalog import DoNothingCatalog
from magnus.exceptions import ConfigurationError, PluginError
from magnus.plugins import MagnusPlugins, get_plugins

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    name: spec
    for family in hookspecs.SPEC_FAMILIES
    for name, spec in hookspecs.specs(family).items()
}
ALL_HOOKS = sorted(SPECS)


def test_there_are_hooks_of_every_family() -> None:
    assert set(hookspecs.PROVIDER_HOOKS.values()) <= set(ALL_HOOKS)
    for name in (
        "before_run",
        "after_run",
        "before_step",
        "after_step",
        "on_step_error",
        "check_compatibility",
        "configure_for_traversal",
        "configure_for_execution",
    ):
        assert name in ALL_HOOKS


@pytest.mark.parametrize("hook", ALL_HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    spec = SPECS[hook]
    docstring = inspect.getdoc(spec) or ""
    assert len(docstring) > 40, f"{hook} needs a docstring saying what it is for"
    arguments = hookspecs.arguments(spec)
    for argument in arguments:
        assert (
            argument in docstring
            or hook.startswith("register_")
            or hook in ("check_compatibility", "configure_for_traversal", "configure_for_execution")
        ), f"{hook} does not document its argument {argument}"
    # The guide shows each hook's signature, so a renamed or added argument shows up there too:
    # ``before_step(step_log, node, context)`` in a table, or ``def before_step(...)`` in code.
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    signature = rf"{hook}\({re.escape(', '.join(arguments))}\)"
    assert re.search(rf"`{signature}`|def {signature}", guide), (
        f"docs/writing-plugins.md does not show {hook}({', '.join(arguments)})"
    )


def _contract_classes() -> list[type]:
    from magnus.catalog import BaseCatalog
    from magnus.executors.base import BaseExecutor
    from magnus.objects import BaseObjectSerializer
    from magnus.runlog.base import BaseRunLogStore
    from magnus.secrets import BaseSecrets
    from magnus.tasks import BaseTaskType
    from magnus.tracking import BaseExperimentTracker

    return [
        BaseRunLogStore,
        BaseCatalog,
        BaseSecrets,
        BaseExperimentTracker,
        BaseTaskType,
        BaseExecutor,
        BaseObjectSerializer,
    ]


def _to_implement(cls: type) -> list[str]:
    """What a service of this kind implements: its abstract methods and those that raise
    NotImplementedError; a base with neither (the executor) is overridden where it differs,
    so every public method of its own is part of the contract."""
    names = set(getattr(cls, "__abstractmethods__", ()))
    for name, attribute in vars(cls).items():
        function = attribute.fget if isinstance(attribute, property) else attribute
        if inspect.isfunction(function) and "raise NotImplementedError" in inspect.getsource(
            function
        ):
            names.add(name)
    if not names:
        names = {
            name
            for name, attribute in vars(cls).items()
            if not name.startswith("_")
            and (inspect.isfunction(attribute) or isinstance(attribute, property))
        }
    return sorted(names)


def _shown(cls: type, name: str) -> str:
    """The signature as the guide prints it: ``put_file(path: Path, ...) -> DataCatalog``."""

    def annotation(value: Any) -> str:
        return value if isinstance(value, str) else getattr(value, "__name__", str(value))

    attribute = inspect.getattr_static(cls, name)
    if isinstance(attribute, property):
        return f"{name} -> {annotation(inspect.signature(attribute.fget).return_annotation)}"
    signature = inspect.signature(attribute)
    shown = []
    for parameter in signature.parameters.values():
        if parameter.name == "self":
            continue
        text = f"{parameter.name}: {annotation(parameter.annotation)}"
        if parameter.default is not parameter.empty:
            default = parameter.default
            text += f' = "{default}"' if isinstance(default, str) else f" = {default!r}"
        shown.append(text)
    return f"{name}({', '.join(shown)}) -> {annotation(signature.return_annotation)}"


CONTRACT_METHODS = [(cls, name) for cls in _contract_classes() for name in _to_implement(cls)]


@pytest.mark.parametrize(
    ("cls", "method"), CONTRACT_METHODS, ids=[f"{c.__name__}.{m}" for c, m in CONTRACT_METHODS]
)
def test_the_guide_shows_every_contract_method_with_its_types(cls: type, method: str) -> None:
    guide = (REPO / "docs" / "writing-plugins.md").read_text()
    # The section headed ``### Catalog: `magnus.catalog.BaseCatalog` ``, up to the next heading.
    heading = re.search(rf"^### .*`magnus\.[\w.]*\b{cls.__name__}`$", guide, re.M)
    assert heading, f"docs/writing-plugins.md has no section on {cls.__name__}"
    section = re.split(r"^#{2,3} ", guide[heading.end() :], maxsplit=1, flags=re.M)[0]
    shown = _shown(cls, method)
    assert f"`{shown}`" in section, (
        f"the {cls.__name__} section of docs/writing-plugins.md does not show `{shown}`"
    )


def test_the_guide_covers_every_service_family() -> None:
    families = {cls.service_type for cls in _contract_classes()}  # type: ignore[attr-defined]
    # Node kinds are not services: the guide shows them with their hook.
    assert families == set(hookspecs.PROVIDERS) - {"node_type"}


def test_every_hook_is_exercised_by_the_test_suite() -> None:
    """Each hook name appears in a test that registers an implementation of it."""
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    for hook in ALL_HOOKS:
        assert re.search(rf"def {hook}\(", sources), f"no test implements {hook}"


def test_observer_hooks_are_never_firstresult() -> None:
    for hook in ("before_run", "after_run", "before_step", "after_step", "on_step_error"):
        options = SPECS[hook].magnus_spec
        assert not options.get("firstresult")


def test_built_ins_come_through_the_provider_hooks() -> None:
    plugins = get_plugins()
    builtin = {
        family: sorted(
            n for n, e in plugins.services(family).items() if e.plugin == "magnus.builtins"
        )
        for family in ("run_log_store", "catalog", "executor")
    }
    assert builtin["run_log_store"] == ["buffered", "chunked-fs", "file-system"]
    assert builtin["catalog"] == ["do-nothing", "file-system"]
    assert builtin["executor"] == ["local", "mocked"]
    assert sorted(plugins.services("task_type")) == ["notebook", "python", "shell"]
    entry = plugins.services("catalog")["file-system"]
    assert entry.distribution == "magnus-core"
    assert plugins.service_class("catalog", "do-nothing") is DoNothingCatalog


class _ExtraCatalog(DoNothingCatalog):
    service_name: ClassVar[str] = "extra"


class _ClashingCatalog(DoNothingCatalog):
    service_name: ClassVar[str] = "file-system"


class _ProviderPlugin:
    def __init__(self, *classes: type) -> None:
        self.classes = list(classes)

    @hookimpl
    def register_catalogs(self) -> list[type]:
        return self.classes


def test_a_third_party_service_is_found_by_type() -> None:
    plugins = MagnusPlugins(load_entry_points=False)
    plugins.register(_ProviderPlugin(_ExtraCatalog), "extra-plugin", "magnus-extra", "1.0")
    assert plugins.service_class("catalog", "extra") is _ExtraCatalog
    info = next(i for i in plugins.infos() if i.name == "extra-plugin")
    assert info.services == {"catalog": ["extra"]}
    assert info.distribution == "magnus-extra"
    assert "register_catalogs" in info.hooks


def test_a_duplicate_service_name_names_both_origins() -> None:
    plugins = MagnusPlugins(load_entry_points=False)
    plugins.register(_ProviderPlugin(_ClashingCatalog), "clash", "magnus-clash", "1.0")
    with pytest.raises(PluginError) as info:
        plugins.service_class("catalog", "file-system")
    message = str(info.value)
    assert "magnus-core" in message and "magnus-clash" in message
    assert "'file-system'" in message


def test_an_unknown_type_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"installed: buffered, chunked-fs"):
        get_plugins().service_class("run_log_store", "postgres")


def _fake_entry_point_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Install a real distribution with a `magnus` entry point on sys.path (no pip needed)."""
    package = tmp_path / "fake_magnus_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from typing import ClassVar\n"
        "from magnus import hookimpl\n"
        "from magnus.catalog import DoNothingCatalog\n"
        "class FakeCatalog(DoNothingCatalog):\n"
        "    service_name: ClassVar[str] = 'fake'\n"
        "@hookimpl\n"
        "def register_catalogs():\n"
        "    return [FakeCatalog]\n"
    )
    dist = tmp_path / "fake_magnus_plugin-2.5.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-magnus-plugin\nVersion: 2.5\n"
    )
    (dist / "entry_points.txt").write_text("[magnus]\nfake = fake_magnus_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_magnus_plugin", raising=False)


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_entry_point_plugin(monkeypatch, tmp_path)
    plugins = MagnusPlugins()
    assert plugins.services("catalog")["fake"].distribution == "fake-magnus-plugin"
    info = next(i for i in plugins.infos() if i.name == "fake")
    assert (info.distribution, info.version) == ("fake-magnus-plugin", "2.5")


@pytest.mark.parametrize("blocked", ["fake", "fake-magnus-plugin"])
def test_plugins_can_be_blocked_by_name_or_distribution(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, blocked: str
) -> None:
    _fake_entry_point_plugin(monkeypatch, tmp_path)
    monkeypatch.setenv("MAGNUS_DISABLE_PLUGINS", f"other, {blocked}")
    plugins = MagnusPlugins()
    assert "fake" not in plugins.services("catalog")
    assert any(i.blocked and i.name == "fake" for i in plugins.infos())


def test_a_broken_plugin_fails_loudly_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_entry_point_plugin(monkeypatch, tmp_path)
    (tmp_path / "fake_magnus_plugin" / "__init__.py").write_text("raise ImportError('boom')\n")
    with pytest.raises(
        PluginError,
        match=r"'fake' from fake-magnus-plugin failed to load.*boom.*MAGNUS_DISABLE_PLUGINS=fake",
    ):
        MagnusPlugins()


MISSPELLED = """
from magnus import hookimpl


@hookimpl
def befor_step(step_log):
    pass


@hookimpl
def after_step(step_log):
    pass
"""


def test_a_misspelled_hook_fails_at_load_naming_its_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "misspelled_hooks.py").write_text(MISSPELLED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "misspelled_hooks", raising=False)
    monkeypatch.setenv("MAGNUS_PLUGINS", "misspelled_hooks")
    with pytest.raises(PluginError) as info:
        MagnusPlugins()
    message = str(info.value)
    assert "'misspelled_hooks' from misspelled_hooks (MAGNUS_PLUGINS)" in message
    assert "'befor_step' (did you mean 'before_step'?)" in message
    assert "after_step" not in message


COUNTING_OBSERVER = """
import json

from magnus import hookimpl


class StepCounter:
    def __init__(self):
        self.seen = []

    @hookimpl
    def after_step(self, step_log):
        self.seen.append(step_log.internal_name)

    @hookimpl
    def after_run(self, run_log):
        with open("counted.json", "w", encoding="utf-8") as handle:
            json.dump({"steps": self.seen, "status": run_log.status}, handle)


counter = StepCounter()
"""


def test_an_observer_object_is_registered_as_module_attr(project: Path, run_magnus: Any) -> None:
    (project / "counting.py").write_text(COUNTING_OBSERVER)

    result = run_magnus(
        "execute",
        "-f",
        "examples/shell-and-catalog.yaml",
        cwd=project,
        env={"MAGNUS_PLUGINS": "counting:counter"},
    )

    assert result.returncode == 0, result.stderr
    counted = json.loads((project / "counted.json").read_text())
    assert counted == {
        "steps": ["make data", "clean up", "count words", "success"],
        "status": "SUCCESS",
    }
    listed = run_magnus("plugins", cwd=project, env={"MAGNUS_PLUGINS": "counting:counter"})
    assert "counting:counter" in listed.stdout


def test_a_missing_module_attr_names_the_attribute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "counting.py").write_text(COUNTING_OBSERVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "counting", raising=False)
    monkeypatch.setenv("MAGNUS_PLUGINS", "counting:countr")
    with pytest.raises(PluginError, match=r"module 'counting' has no attribute 'countr'"):
        MagnusPlugins()


def test_a_misspelled_hook_names_its_distribution(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_entry_point_plugin(monkeypatch, tmp_path)
    (tmp_path / "fake_magnus_plugin" / "__init__.py").write_text(
        "from magnus import hookimpl\n@hookimpl\ndef register_catalog():\n    return []\n"
    )
    with pytest.raises(PluginError, match=r"'fake' from fake-magnus-plugin implements"):
        MagnusPlugins()


def test_a_plugin_registered_later_is_checked_and_left_out() -> None:
    class Misspelled:
        @hookimpl
        def on_step_failure(self) -> None:
            pass

    plugins = MagnusPlugins(load_entry_points=False)
    with pytest.raises(PluginError, match=r"'late' from magnus-late implements 'on_step_failure'"):
        plugins.register(Misspelled(), "late", "magnus-late")
    assert plugins.pm.get_plugin("late") is None
    assert "late" not in [info.name for info in plugins.infos()]


def test_the_plugin_api_markers_are_one_pair() -> None:
    """Plugins import ``magnus.hookimpl`` or ``magnus.hookspecs.hookimpl``: both are the marker."""
    assert hookimpl is hookspecs.hookimpl is markers.hookimpl
    assert hookspecs.hookspec is markers.hookspec


def test_the_families_give_the_lists_the_rest_of_magnus_uses() -> None:
    assert list(hookspecs.PROVIDERS) == list(hookspecs.PROVIDER_HOOKS)
    assert hookspecs.PROVIDER_HOOKS["catalog"] == "register_catalogs"
    assert hookspecs.PROVIDERS["node_type"].named_by == "node_type"
    assert hookspecs.OBSERVER_HOOKS == (
        "before_run",
        "after_run",
        "before_step",
        "after_step",
        "on_step_error",
        "before_composite",
        "after_branch",
        "after_composite",
    )
    assert hookspecs.INTEGRATION_HOOKS == (
        "check_compatibility",
        "configure_for_traversal",
        "configure_for_execution",
    )
    hooks = [h for f in hookspecs.SPEC_FAMILIES for h in hookspecs.specs(f)]
    assert sorted(hooks) == ALL_HOOKS and len(set(hooks)) == len(hooks)


@pytest.mark.parametrize("hook", hookspecs.OBSERVER_HOOKS)
def test_the_observer_relay_has_each_observer_hook_with_its_arguments(hook: str) -> None:
    from magnus.observers import Observers

    method = getattr(Observers, hook)
    assert hookspecs.arguments(method) == hookspecs.arguments(SPECS[hook])
    assert inspect.getdoc(method)


def test_the_lower_plugin_modules_leave_the_manager_out() -> None:
    """``markers`` imports nothing else of magnus; the relay, not the plugin manager."""
    code = (
        "import sys, magnus.markers\n"
        "print(sorted(m for m in sys.modules if m.startswith('magnus')))\n"
        "import magnus.observers\n"
        "print('magnus.plugins' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["['magnus', 'magnus.markers']", "False"]


class _Raising:
    @hookimpl
    def before_step(self) -> None:
        raise RuntimeError("observer bug")


class _Recording:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    @hookimpl
    def before_step(self, step_log: Any) -> None:
        self.calls.append(step_log)


def test_a_failing_observer_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    plugins = MagnusPlugins(load_entry_points=False)
    recording = _Recording()
    plugins.register(_Raising(), "raising")
    plugins.register(recording, "recording")
    plugins.observers.before_step(step_log="S", node=None, context=None)
    assert recording.calls == ["S"]
    assert "observer bug" in caplog.text


def test_hook_tracing_logs_calls(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAGNUS_TRACE_HOOKS", "1")
    plugins = MagnusPlugins(load_entry_points=False)
    plugins.register(_Recording(), "recording")
    with caplog.at_level("DEBUG", logger="magnus"):
        plugins.observers.before_step(step_log="S", node=None, context=None)
    assert "hook before_step -> recording" in caplog.text


def _named(base: type, name: str, attribute: str = "service_name") -> type:
    return type(f"Test{base.__name__}", (base,), {attribute: name, "__module__": __name__})


class _EveryProvider:
    """One extra service of every family, through each provider hook."""

    def __init__(self) -> None:
        from magnus.executors.local import LocalExecutor
        from magnus.nodes import StubNode
        from magnus.runlog.buffered import BufferedRunLogStore
        from magnus.secrets import DoNothingSecrets
        from magnus.tasks import ShellTaskType
        from magnus.tracking import DoNothingTracker

        self.classes = {
            "executor": _named(LocalExecutor, "test-executor"),
            "run_log_store": _named(BufferedRunLogStore, "test-store"),
            "catalog": _named(DoNothingCatalog, "test-catalog"),
            "secrets": _named(DoNothingSecrets, "test-secrets"),
            "experiment_tracker": _named(DoNothingTracker, "test-tracker"),
            "task_type": _named(ShellTaskType, "test-shell"),
            "node_type": _named(StubNode, "test-stub", "node_type"),
        }

    @hookimpl
    def register_executors(self) -> list[type]:
        return [self.classes["executor"]]

    @hookimpl
    def register_run_log_stores(self) -> list[type]:
        return [self.classes["run_log_store"]]

    @hookimpl
    def register_catalogs(self) -> list[type]:
        return [self.classes["catalog"]]

    @hookimpl
    def register_secrets(self) -> list[type]:
        return [self.classes["secrets"]]

    @hookimpl
    def register_experiment_trackers(self) -> list[type]:
        return [self.classes["experiment_tracker"]]

    @hookimpl
    def register_task_types(self) -> list[type]:
        return [self.classes["task_type"]]

    @hookimpl
    def register_node_types(self) -> list[type]:
        return [self.classes["node_type"]]


def test_every_provider_hook_contributes_a_selectable_service(tmp_path: Path) -> None:
    plugins = get_plugins()
    provider = _EveryProvider()
    plugins.register(provider, "every", "magnus-every", "0.1")
    for family, cls in provider.classes.items():
        name = getattr(cls, hookspecs.PROVIDERS[family].named_by)
        assert plugins.service_class(family, name) is cls
        assert plugins.services(family)[name].distribution == "magnus-every"

    from magnus.building import build_graph
    from magnus.entrypoints import build_services

    config = tmp_path / "every.yaml"
    config.write_text(
        "executor: {type: test-executor}\nrun_log_store: {type: test-store}\n"
        "catalog: {type: test-catalog}\nsecrets: {type: test-secrets}\n"
        "experiment_tracker: {type: test-tracker}\n"
    )
    services = build_services(str(config), plugins)
    assert {k: s.service_name for k, s in services.items()} == {
        "executor": "test-executor",
        "run_log_store": "test-store",
        "catalog": "test-catalog",
        "secrets": "test-secrets",
        "experiment_tracker": "test-tracker",
    }
    graph = build_graph(
        {
            "start_at": "t",
            "steps": {
                "t": {
                    "type": "task",
                    "command_type": "test-shell",
                    "command": "true",
                    "next": "s",
                },
                "s": {"type": "test-stub", "next": "success"},
                "success": {"type": "success"},
                "fail": {"type": "fail"},
            },
        },
        plugins,
    )
    assert graph.nodes["t"].dump()["command_type"] == "test-shell"
    assert graph.nodes["s"].dump()["type"] == "test-stub"
