"""Every command the READMEs print runs as printed, in a fresh virtualenv made from the repository.

The commands are read from the Markdown of README.md and packages/*/README.md, so that a command
added to a README is tested without touching this file:

* every line of a fenced ``bash`` block (a trailing ``# comment`` is not part of the command);
* inline commands that a sentence offers to run: the code spans after "try" or "run" (or "run
  as"), chained with commas, "and" or "then" ("Try `magnus execute -f ...`, then
  `magnus runs show <run id>`"), where ``<run id>`` stands for the run the command before made;
* a program: a sentence saying "save it as `pipeline.py` ... run `python pipeline.py`" before a
  ``python`` block writes the block to that file before its command runs.

They run in document order (README.md first, then each package's README in name order), in one
virtualenv made with ``python -m venv`` and filled only by the READMEs' own ``pip install``
lines, from a copy of the repository, with nothing of the test environment on their path. A
printed command that fails, and is not listed in SKIPPED with the reason it cannot run here,
fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", *sorted(REPO.glob("packages/*/README.md"))]
#: what a README command may touch in the copy of the repository
COPIED = ["README.md", "LICENSE", "packages", "examples"]

_SYNOPSIS = "a synopsis: options in brackets, placeholders in capitals"
#: printed commands that cannot run here, each with the reason
SKIPPED: dict[str, str] = {
    "pip install nox && nox -s tests": "the whole test suite, of which this test is a part",
    "magnus execute -f pipeline.yaml [-c config.yaml] [-p parameters.yaml] [--run-id ID] "
    "[--tag T] [--reuse]": _SYNOPSIS,
    "magnus explain RUN_ID [--step NAME] [--json]": _SYNOPSIS,
    "magnus execute-job -f job.yaml [-c config.yaml] [-p parameters.yaml] [--run-id ID] "
    "[--tag T]": _SYNOPSIS,
    "magnus validate -f pipeline.yaml [-c config.yaml] [-p parameters.yaml] [--no-import]": (
        _SYNOPSIS
    ),
    "magnus retry RUN_ID [-f fixed.yaml] [--strict]": _SYNOPSIS,
    "magnus runs list [--status FAIL] [--tag T] [--since 2d] [--limit N] [--json]": _SYNOPSIS,
    "magnus runs diff RUN_A RUN_B [--json]": _SYNOPSIS,
    "magnus runs show RUN_ID [--json] [--step NAME]": _SYNOPSIS,
    "magnus report RUN_ID [-o report.html] [-c config.yaml]": _SYNOPSIS,
    "magnus dag -f pipeline.yaml [--format mermaid|dot|html] [-o FILE]": _SYNOPSIS,
    "magnus execute -f pipeline.yaml -c argo.yaml [-p parameters.yaml] [--tag T]": _SYNOPSIS,
    "magnus retry ORIGINAL_RUN_ID -c laptop.yaml": _SYNOPSIS,
    "magnus execute -f pipeline.yaml -c argo.yaml --use-cached ORIGINAL_RUN_ID": _SYNOPSIS,
    "argo submit argo-pipeline.yaml -p rows=10": (
        "needs the argo command line and a Kubernetes cluster running Argo Workflows; what "
        "`magnus execute` renders for it is checked in tests/executor_argo"
    ),
    "pip install -e './packages/catalog-s3[testing]'": (
        "`nox -s tests` makes this very install (editable, with the testing extra) before the "
        "tests run"
    ),
    "python -m pytest tests/catalog_s3 -n 2": "those tests are a part of `nox -s tests`",
    "python bench/s3_catalog.py": "a benchmark of several minutes, never run in CI",
}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_COMMENT = re.compile(r"\s+#\s.*$")
_SPAN = r"`[^`]+`"
_INLINE = re.compile(
    rf"\b(?:[Tt]ry|run(?: as)?) ({_SPAN}(?:(?:,? and then|,? then|,? and|,) {_SPAN})*)"
)
_PROGRAM = re.compile(r"save it as `([^`]+)`[^`]*?run `([^`]+)`", re.S)
_RUN_ENDED = re.compile(r"^Run (\S+) (SUCCESS|FAIL)", re.M)


@dataclass
class Command:
    """One printed command and where it is printed."""

    text: str
    where: str
    #: a program the command runs, written first: (file name, source)
    program: tuple[str, str] | None = None


def _line(readme: Path, offset: int) -> str:
    text = readme.read_text()
    return f"{readme.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"


def printed_commands() -> list[Command]:
    """Every command the READMEs print, in document order."""
    found: list[tuple[int, Command]] = []
    for order, readme in enumerate(READMES):
        text = readme.read_text()
        fences = list(_FENCE.finditer(text))
        for fence in fences:
            if fence.group(1) != "bash":
                continue
            offset = fence.start(2)
            for raw in fence.group(2).splitlines(keepends=True):
                line = _COMMENT.sub("", raw.rstrip("\n")).strip()
                if line and not line.startswith("#"):
                    command = Command(line, _line(readme, offset))
                    found.append((order * 10**9 + offset, command))
                offset += len(raw)
        # Blocks blanked out, not removed, so that offsets in the prose are the file's.
        prose = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        programs = {}
        for match in _PROGRAM.finditer(prose):
            block = next(f for f in fences if f.start() > match.end())
            assert block.group(1) == "python", f"{_line(readme, match.start())}: no python block"
            programs[match.start(2)] = (match.group(1), block.group(2))
        # Newlines become spaces, so offsets stay those of the file.
        for match in _INLINE.finditer(prose.replace("\n", " ")):
            for span in re.finditer(r"`([^`]+)`", match.group(1)):
                start = match.start(1) + span.start()
                command = Command(span.group(1), _line(readme, start), programs.get(start + 1))
                found.append((order * 10**9 + start, command))
    return [command for _, command in sorted(found, key=lambda item: item[0])]


def test_every_skipped_command_is_still_printed() -> None:
    printed = {command.text for command in printed_commands()}
    assert not set(SKIPPED) - printed, "SKIPPED lists commands no README prints any more"


def test_the_commands_run_every_example_pipeline() -> None:
    commands = " ".join(command.text for command in printed_commands())
    nested = {"sub-pipeline.yaml", "parameters.yaml"}  # a dag step's file, parameters
    examples = sorted(p.name for p in (REPO / "examples").glob("*.yaml") if p.name not in nested)
    assert examples and not [e for e in examples if f"examples/{e}" not in commands], commands


def test_magnus_packages_are_installed_from_the_repository() -> None:
    """No magnus package is on a package index: every pip line printed anywhere installs a path."""
    documents = [*READMES, REPO / "docs" / "writing-plugins.md"]
    lines = [
        (document.relative_to(REPO), line)
        for document in documents
        # The install itself: up to the end of the code, a comment or the next command.
        for line in re.findall(r"pip install [^`\n#&;|]+", document.read_text())
    ]
    by_name = [
        f"{where}: {line}"
        for where, line in lines
        if re.search(r"(?:^|\s)['\"]?magnus", line.removeprefix("pip install"))
    ]
    assert lines and not by_name, "install these from ./packages/<name>:\n" + "\n".join(by_name)


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A copy of the repository (a git checkout) and an empty virtualenv beside it."""
    root = tmp_path_factory.mktemp("readme")
    checkout = root / "magnus"
    checkout.mkdir()
    ignored = shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".run_log_store", ".catalog", "*_out*.ipynb"
    )
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, checkout / name, ignore=ignored)
        else:
            shutil.copy(source, checkout / name)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=checkout, check=True, capture_output=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "copy"],
        cwd=checkout,
        check=True,
        capture_output=True,
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    yield checkout, venv


def _environment(venv: Path) -> dict[str, str]:
    """A shell in the virtualenv, as after ``source venv/bin/activate``: nothing of ours."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAGNUS_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "COV_"))
    }
    keep["PATH"] = f"{venv / 'bin'}{os.pathsep}{keep.get('PATH', '')}"
    keep["VIRTUAL_ENV"] = str(venv)
    # Not compiling every installed module to bytecode saves seconds; nothing else changes.
    keep["PIP_NO_COMPILE"] = "1"
    return keep


def test_every_printed_command_runs_as_printed(fresh_checkout: tuple[Path, Path]) -> None:
    checkout, venv = fresh_checkout
    env = _environment(venv)
    failures: list[str] = []
    ran: list[str] = []
    last_run = ""
    for command in printed_commands():
        if command.text in SKIPPED:
            continue
        if command.program is not None:
            name, source = command.program
            (checkout / name).write_text(source)
        text = command.text.replace("<run id>", last_run)
        result = subprocess.run(
            ["bash", "-c", text],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = result.stdout + result.stderr
        ended = _RUN_ENDED.findall(output)
        if ended:
            last_run = ended[-1][0]
        ran.append(command.text)
        if result.returncode != 0 or any(status == "FAIL" for _, status in ended):
            failures.append(
                f"{command.where}: `{command.text}` exited {result.returncode}\n"
                f"{output[-1500:]}\n(fix the command, or list it in SKIPPED with the reason)"
            )
    assert not failures, "\n\n".join(failures)
    assert any(text.startswith("pip install ./packages/core") for text in ran)
    assert any(text.startswith("python ") for text in ran), "the SDK program did not run"
