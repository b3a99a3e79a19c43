"""Every package of the monorepo stands alone and accepts the core in this checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
PLUGINS = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml") if p.parent.name != "core")


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]


def test_core_is_magnus_core() -> None:
    core = _project(PACKAGES / "core")
    assert core["name"] == "magnus-core"
    import magnus

    assert magnus.__version__ == core["version"]


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_each_plugin_admits_the_core_of_this_checkout(plugin: Path) -> None:
    core_version = _project(PACKAGES / "core")["version"]
    project = _project(plugin)
    requirements = [Requirement(r) for r in project["dependencies"]]
    core = [r for r in requirements if r.name == "magnus-core"]
    assert len(core) == 1, f"{plugin.name} must depend on magnus-core exactly once"
    assert core[0].specifier, f"{plugin.name} must give magnus-core a version range"
    assert core[0].specifier.contains(core_version), (
        f"{plugin.name} requires {core[0]}, which excludes magnus-core {core_version}"
    )
    assert project["version"], f"{plugin.name} has its own version"
    entry_points = project.get("entry-points", {}).get("magnus", {})
    assert entry_points, f"{plugin.name} registers no plugin in the 'magnus' entry-point group"
