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


ALL_PACKAGES = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))


@pytest.mark.parametrize("package", ALL_PACKAGES, ids=[p.name for p in ALL_PACKAGES])
def test_each_package_declares_licence_platform_and_test_extra(package: Path) -> None:
    project = _project(package)
    assert project["license"] == "Apache-2.0"
    [licence_file] = project["license-files"]
    licence = (package / licence_file).read_text()
    assert licence == (PACKAGES.parent / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    # The file-system stores lock with fcntl: POSIX only, and said so.
    assert "Operating System :: POSIX" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    extras = project.get("optional-dependencies", {})
    assert "testing" in extras and "test" not in extras
    build = tomllib.loads((package / "pyproject.toml").read_text())["build-system"]
    setuptools = [Requirement(r) for r in build["requires"] if Requirement(r).name == "setuptools"]
    # An SPDX `license` and `license-files` need setuptools 77.
    assert setuptools and not setuptools[0].specifier.contains("76.9")
