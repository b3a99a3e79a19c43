"""Every development session of the magnus monorepo.

`nox -s tests` installs magnus-core and every plugin package of `packages/` editable, in one pip
call (magnus-core is not on PyPI, so a plugin could not resolve it on its own), and runs the whole
suite. `lint` and `typecheck` keep the code clean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TEST_REQUIREMENTS = ["pytest>=7.4", "pytest-xdist>=3.5", "packaging>=23"]


def package_dirs() -> list[Path]:
    """Core first, then every plugin package, in name order."""
    found = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))
    return sorted(found, key=lambda p: (p.name != "core", p.name))


def editable_requirements() -> list[str]:
    """`-e path[testing]` for every package: `testing` is what each package's tests need."""
    args: list[str] = []
    for path in package_dirs():
        meta = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        suffix = "[testing]" if "testing" in meta.get("optional-dependencies", {}) else ""
        args += ["-e", f"{path.relative_to(ROOT)}{suffix}"]
    return args


def _ensure_chromium(session: nox.Session) -> None:
    """The HTML report tests open pages in a real browser: Debian's chromium, installed here
    when missing (as root, with apt-get); otherwise the session stops saying so."""
    import os
    import shutil

    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run("apt-get", "install", "-y", "-q", "chromium", external=True, env=env)
        return
    session.error(
        "chromium is missing and cannot be installed here (needs root and apt-get): the HTML "
        "report tests need it; install Debian's chromium package (apt-get install -y chromium)"
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Install every package editable in one environment and run the whole suite."""
    session.install(*editable_requirements(), *TEST_REQUIREMENTS)
    _ensure_chromium(session)
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


BENCH_WORK = ROOT / "bench" / ".work"
OLD_MAGNUS = "magnus==0.5.1"
OLD_CONSTRAINTS = ROOT / "bench" / "constraints-0.5.1.txt"


def _bench_runs_old(posargs: list[str]) -> bool:
    """Whether the benchmark's `--tools` (all by default) include magnus 0.5.1."""
    for index, arg in enumerate(posargs):
        if arg == "--tools" and index + 1 < len(posargs):
            return "0.5.1" in posargs[index + 1].split(",")
        if arg.startswith("--tools="):
            return "0.5.1" in arg.removeprefix("--tools=").split(",")
    return True


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmark against magnus 0.5.1 and plain Python (`-- --full` adds N=10,000). Not CI.

    Ours is installed editable in the session; magnus 0.5.1 gets a virtualenv of its own in
    bench/.work/venv-0.5.1 (the two cannot share one: both are the `magnus` package), made once
    and remade when the pinned versions change.
    """
    session.install("-e", "packages/core")
    # pip compiled the bytecode of magnus 0.5.1 and Kedro when it installed them; an editable
    # install compiles nothing, and a run that compiles ours (PYTHONDONTWRITEBYTECODE set, a
    # read-only checkout) would pay some 0.1 s that no user's installed magnus pays.
    session.run("python", "-m", "compileall", "-q", "packages/core/src")
    old = BENCH_WORK / "venv-0.5.1"
    python = old / "bin" / "python"
    marker = old / "installed-with.txt"
    wanted = f"{OLD_MAGNUS}\n{OLD_CONSTRAINTS.read_text()}"
    if _bench_runs_old(session.posargs) and (not marker.is_file() or marker.read_text() != wanted):
        session.run("python", "-m", "venv", "--clear", str(old))
        session.run(
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(OLD_CONSTRAINTS),
            OLD_MAGNUS,
            external=True,
        )
        marker.write_text(wanted)
    invoked = "nox -s bench" + (f" -- {' '.join(session.posargs)}" if session.posargs else "")
    session.run(
        "python",
        "bench/run.py",
        "--old-python",
        str(python),
        "--invoked-as",
        invoked,
        *session.posargs,
    )
