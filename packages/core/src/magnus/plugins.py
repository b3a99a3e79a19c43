"""The plugin manager: built-ins, entry points, blocking, tracing, and a typed facade.

Plugins come from the ``magnus`` entry-point group, and from ``MAGNUS_PLUGINS``: a comma-separated
list of importable modules (``my_project.timing``) or objects in them (``my_project.timing:timer``),
handy for a project's own plugin that is not a distribution; child processes inherit it.
``MAGNUS_DISABLE_PLUGINS`` (comma separated) blocks plugins by entry-point name or distribution
name; ``MAGNUS_TRACE_HOOKS=1`` logs every hook call at DEBUG level. magnus' own services are the
plugin ``magnus.builtins``, registered through the same hooks as everyone else's. A plugin
implementing a hook that no specification names (a misspelled hook) is refused when it is
registered.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from magnus import builtins, hookspecs
from magnus.building import NodeKinds
from magnus.contracts import guard_service_class
from magnus.exceptions import ConfigurationError, PluginError
from magnus.markers import PROJECT_NAME
from magnus.observers import Observers

if TYPE_CHECKING:
    from magnus.context import RunContext

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "magnus"
DISABLE_ENV = "MAGNUS_DISABLE_PLUGINS"
MODULES_ENV = "MAGNUS_PLUGINS"
TRACE_ENV = "MAGNUS_TRACE_HOOKS"
BUILTIN_NAME = "magnus.builtins"


@dataclass
class PluginInfo:
    """What ``magnus plugins`` shows of one plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str]
    services: dict[str, list[str]] = field(default_factory=dict)
    blocked: bool = False


@dataclass
class ServiceEntry:
    """A service class and where it came from."""

    cls: type
    plugin: str
    distribution: str


def _blocked_names() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


class MagnusPlugins:
    """The plugin manager of one process, with a typed view of the service registry."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        for family in hookspecs.SPEC_FAMILIES:
            self.pm.add_hookspecs(family)
        self._origins: dict[str, tuple[str, str]] = {}
        self.blocked: list[PluginInfo] = []
        self._registry: dict[str, dict[str, ServiceEntry]] = {}

        core_version = _distribution_version("magnus-core")
        self.register(builtins, BUILTIN_NAME, "magnus-core", core_version)
        if load_entry_points:
            self._load_entry_points()
            self._load_modules()
        self.tracing = os.environ.get(TRACE_ENV, "") not in ("", "0", "false")
        if self.tracing:
            self.pm.trace.root.setwriter(lambda message: logger.debug(message.rstrip()))
            self.pm.enable_tracing()
        #: the typed calls to the observer hooks, handed to every run's context
        self.observers: Observers[RunContext] = Observers(self.pm.hook, trace=self.tracing)

    @property
    def hook(self) -> pluggy.HookRelay:
        """pluggy's hook relay (``plugins.hook.check_compatibility(...)``)."""
        return self.pm.hook

    def register(
        self, plugin: object, name: str, distribution: str = "", version: str = ""
    ) -> None:
        """Register a plugin object or module; the registry is rebuilt on next use."""
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"Could not register plugin {name!r}: {exc}") from None
        self._origins[name] = (distribution or name, version)
        self._registry = {}
        self._check_hook_names()

    def _check_hook_names(self) -> None:
        """Refuse a plugin implementing a hook no specification names (tox does the same).

        Without this check pluggy keeps such an implementation and never calls it, so a
        misspelled ``befor_step`` would fail silently.
        """
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
            unknown = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(exc.plugin) or []
                if not caller.has_spec()
            )
            distribution = self._origins.get(name, (name, ""))[0]
            self.unregister(name)
            raise PluginError(
                f"Plugin {name!r} from {distribution} implements "
                f"{', '.join(_with_suggestion(hook) for hook in unknown)}, which no magnus hook "
                "specification names (see magnus.hookspecs)"
            ) from None

    def unregister(self, name: str) -> None:
        """Remove a plugin by name (tests use it to undo what they registered)."""
        self.pm.unregister(name=name)
        self._origins.pop(name, None)
        self._registry = {}

    def _load_entry_points(self) -> None:
        blocked = _blocked_names()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            if ep.name in blocked or dist_name in blocked:
                self.blocked.append(PluginInfo(ep.name, dist_name, version, [], blocked=True))
                continue
            if self.pm.get_plugin(ep.name) is not None:
                first = self._origins[ep.name][0]
                raise PluginError(f"Two plugins are named {ep.name!r}: {first} and {dist_name}")
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"Plugin {ep.name!r} from {dist_name or 'an unknown distribution'} failed to "
                    f"load ({ep.value}): {exc}. Block it with {DISABLE_ENV}={ep.name}"
                ) from exc
            self.register(plugin, ep.name, dist_name, version)

    def _load_modules(self) -> None:
        import importlib
        import sys

        modules = [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
        if modules and "" not in sys.path and os.getcwd() not in sys.path:
            # A project's own plugin module lives beside its pipelines.
            sys.path.insert(0, os.getcwd())
        for name in modules:
            if self.pm.get_plugin(name) is not None or name in _blocked_names():
                continue
            # ``module:attr`` registers an object of the module (an observer holding state)
            # instead of the module itself, as an entry point's ``module:attr`` does.
            module_name, _, attribute = name.partition(":")
            try:
                plugin: object = importlib.import_module(module_name)
            except Exception as exc:
                raise PluginError(
                    f"Plugin module {module_name!r} named in {MODULES_ENV} failed to import: {exc}"
                ) from exc
            for part in attribute.split(".") if attribute else []:
                try:
                    plugin = getattr(plugin, part)
                except AttributeError:
                    raise PluginError(
                        f"Plugin {name!r} named in {MODULES_ENV}: module {module_name!r} has no "
                        f"attribute {attribute!r}"
                    ) from None
            self.register(plugin, name, f"{name} ({MODULES_ENV})", "")

    # ---------------------------------------------------------------- service registry

    def _build_family(self, family: str) -> dict[str, ServiceEntry]:
        entries: dict[str, ServiceEntry] = {}
        provider = hookspecs.PROVIDERS[family]
        caller = getattr(self.pm.hook, provider.hook)
        for impl in caller.get_hookimpls():
            distribution = self._origins.get(impl.plugin_name, (impl.plugin_name, ""))[0]
            for cls in impl.function() or []:
                # Each family says which class attribute names its classes (hookspecs.provides).
                name = getattr(cls, provider.named_by, "")
                if not name:
                    raise PluginError(
                        f"{distribution} registers {cls!r} as a {family} without a "
                        f"{provider.named_by}"
                    )
                if name in entries:
                    first = entries[name]
                    raise PluginError(
                        f"Two {family} services are named {name!r}: {first.cls.__qualname__} "
                        f"from {first.distribution} and {cls.__qualname__} from {distribution}"
                    )
                if impl.plugin_name != BUILTIN_NAME:
                    # A guest's service: what it returns to magnus is checked at the boundary.
                    guard_service_class(cls, distribution)
                entries[name] = ServiceEntry(cls, impl.plugin_name, distribution)
        return entries

    def services(self, family: str) -> dict[str, ServiceEntry]:
        """``{service_name: ServiceEntry}`` of one family, built from its provider hook once."""
        if family not in self._registry:
            self._registry[family] = self._build_family(family)
        return self._registry[family]

    @property
    def registry(self) -> dict[str, dict[str, ServiceEntry]]:
        """Every family: ``{family: {service_name: ServiceEntry}}``."""
        return {family: self.services(family) for family in hookspecs.PROVIDERS}

    def service_class(self, family: str, name: str) -> type[Any]:
        """The class registered under ``name`` in ``family``, or a clear error listing choices."""
        entries = self.services(family)
        try:
            return entries[name].cls
        except KeyError:
            known = ", ".join(sorted(entries)) or "none"
            raise ConfigurationError(
                f"No {family} service of type {name!r} is installed (installed: {known}). "
                "Is the plugin that provides it installed and not disabled?"
            ) from None

    def kinds(self) -> NodeKinds:
        """The node kinds and task types installed: what pipelines are built with."""
        return NodeKinds(
            node_types={name: entry.cls for name, entry in self.services("node_type").items()},
            task_types={name: entry.cls for name, entry in self.services("task_type").items()},
        )

    def infos(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, hooks and services, then blocked ones."""
        by_plugin: dict[str, dict[str, list[str]]] = {}
        for family, entries in self.registry.items():
            for name, entry in entries.items():
                by_plugin.setdefault(entry.plugin, {}).setdefault(family, []).append(name)
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            distribution, version = self._origins.get(name, (name, ""))
            infos.append(PluginInfo(name, distribution, version, hooks, by_plugin.get(name, {})))
        return infos + self.blocked


def _with_suggestion(hook: str) -> str:
    known = [name for family in hookspecs.SPEC_FAMILIES for name in hookspecs.specs(family)]
    close = difflib.get_close_matches(hook, known, n=1)
    return f"{hook!r} (did you mean {close[0]!r}?)" if close else repr(hook)


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_PLUGINS: MagnusPlugins | None = None


def get_plugins() -> MagnusPlugins:
    """The process-wide plugin manager, created on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = MagnusPlugins()
    return _PLUGINS


def reset_plugins() -> None:
    """Forget the process-wide manager (after changing ``MAGNUS_DISABLE_PLUGINS``, in tests)."""
    global _PLUGINS
    _PLUGINS = None
