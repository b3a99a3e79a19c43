"""Every development session of the magnus monorepo.

`nox -s tests` installs magnus-core and every plugin package of `packages/` editable, in one pip
call (magnus-core is not on PyPI, so a plugin could not resolve it on its own), and runs the whole
suite. `lint` and `typecheck` keep the code clean.
"""

from __future__ import annotations

from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TEST_REQUIREMENTS = ["pytest>=7.4", "pytest-xdist>=3.5"]


def package_dirs() -> list[Path]:
    """Core first, then every plugin package, in name order."""
    found = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))
    return sorted(found, key=lambda p: (p.name != "core", p.name))


def editable_requirements() -> list[str]:
    """`-e path[extras]` for every package, with the extras its tests need."""
    args: list[str] = []
    for path in package_dirs():
        meta = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        extras = sorted(set(meta.get("optional-dependencies", {})) & {"testing", "test"})
        suffix = f"[{','.join(extras)}]" if extras else ""
        args += ["-e", f"{path.relative_to(ROOT)}{suffix}"]
    return args


@nox.session
def tests(session: nox.Session) -> None:
    """Install every package editable in one environment and run the whole suite."""
    session.install(*editable_requirements(), *TEST_REQUIREMENTS)
    args = session.posargs or ["-n", "2", "tests"]
    session.run("pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every package's sources."""
    session.install(*editable_requirements(), "mypy>=1.10", "types-PyYAML", "pytest>=7.4")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Run every example pipeline on the embedded defaults, from a scratch folder."""
    session.install("-e", "packages/core")
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        if example.name.startswith(("config", "parameters")):
            continue
        session.run("magnus", "execute", "-f", str(example), success_codes=[0, 1])
