"""The fingerprint of a step attempt: digests of everything that decides its result.

Five parts, each a SHA-256 hex digest, and a ``key`` over all of them:

- **code** -- a python step: its function's module and every module of the project that it
  imports, transitively; a notebook: its code cells (and the project modules they import); a
  shell step: the command text; any other kind of task: its definition.
- **definition** -- the step's definition without what only routes it (``next``,
  ``on_failure``) or retries it (``max_attempts``): its command, type, catalog patterns, ...
- **parameters** -- the parameters the attempt consumed and the map element it ran for.
- **inputs** -- name and SHA-256 of every file the step got from the catalog.
- **environment** -- the Python implementation and version, the installed distributions, the
  hash of the project's lock file when it has one, and the image an orchestrator names in
  ``MAGNUS_IMAGE``.

Which modules are the project's: a module whose file lies under the working directory, in the
working directory itself or in a ``sys.path`` entry under it (``src/``), and not in a
``site-packages`` or ``dist-packages`` folder. Installed code is identified by its distribution's
version in the environment part instead. Imports are found in the source (every ``import`` and
``from ... import``, wherever it is written), so the code part can be computed before a step runs
and does not depend on what an earlier step happened to import.

A module counts by its syntax tree without positions, docstrings or comments: reformatting,
comments and documentation do not change what a step computes; any change of a name, a constant
or a statement does. Code is named by module, never by path, so a checkout elsewhere (an
orchestrator's container) fingerprints the same.

Everything read is cached per process, by file path, size, modification time and inode: a
pipeline of 1,000 steps parses each module once, and a step whose function was fingerprinted
already costs a ``stat`` of each module it depends on.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magnus.identity import environment_identity
from magnus.runlog.models import Fingerprint

#: the image an orchestrator ran the step in, when it says so
IMAGE_ENV = "MAGNUS_IMAGE"

#: lock files whose hash identifies the project's dependencies, first found wins
LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock", "pixi.lock")

#: definition fields that do not change what a step computes: where it leads, how often it is
#: tried, whether its result may be reused, and what an orchestrator gives its container (an
#: image that changes the code is seen in the environment part)
ROUTING_FIELDS = frozenset({"next", "on_failure", "max_attempts", "cache", "overrides"})

#: the part of a module outside its top-level functions and classes, in code details
MODULE_LEVEL = "<module>"

_INSTALLED_FOLDERS = frozenset({"site-packages", "dist-packages"})

#: size, mtime_ns and inode: an edit, or an editor's save by rename, changes one of them
_Stat = tuple[int, int, int]


def digest(value: Any) -> str:
    """SHA-256 hex of ``value`` as canonical JSON (sorted keys; ``repr`` for the rest)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# What most steps of a long pipeline have: worked out once.
_NOTHING_CONSUMED = digest({"parameters": {}, "map_variables": {}})
_NO_INPUTS = digest([])


def step_fingerprint(
    *,
    command_type: str | None,
    command: str | None,
    definition: Mapping[str, Any],
    parameters: Mapping[str, Any],
    map_variables: Mapping[str, Any],
    inputs: Iterable[tuple[str, str]],
    environment: Mapping[str, Any] | None = None,
    definition_hash: str | None = None,
) -> Fingerprint:
    """The fingerprint of one attempt.

    ``command_type`` and ``command`` are ``None`` for a step that runs nothing (a stub);
    ``inputs`` are ``(catalog name, sha256)`` pairs; ``environment`` is the run's environment
    identity (computed here, once per process, when not given); ``definition_hash`` is
    ``definition_digest(definition)`` when the caller knows it already.
    """
    inputs = sorted(set(inputs))
    parts = {
        "code": code_digest(command_type, command, definition),
        "definition": definition_hash or definition_digest(definition),
        "parameters": (
            digest({"parameters": parameters, "map_variables": map_variables})
            if parameters or map_variables
            else _NOTHING_CONSUMED
        ),
        "inputs": digest(inputs) if inputs else _NO_INPUTS,
        "environment": environment_digest(environment),
    }
    key = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in parts.items()).encode()).hexdigest()
    return Fingerprint(key=key, **parts)


def definition_digest(definition: Mapping[str, Any]) -> str:
    """The digest of what in a step's definition changes what it does."""
    return digest({k: v for k, v in definition.items() if k not in ROUTING_FIELDS})


def code_digest(
    command_type: str | None, command: str | None, definition: Mapping[str, Any]
) -> str:
    """The digest of the code a step runs (see the module's documentation)."""
    if command is None:
        return digest(None)
    if command_type == "python":
        module, _, _ = command.rpartition(".")
        return _project_code(command, _with_parents(module), in_process=True)
    if command_type == "shell":
        return digest({"shell": command})
    if command_type == "notebook":
        cells, imported = _notebook(Path(command))
        return digest({"cells": cells, "modules": _project_code("", imported)})
    return digest(dict(definition))


def code_details(command_type: str | None, command: str | None) -> dict[str, Any]:
    """What :func:`code_digest` digested, in parts an explanation can compare.

    ``modules``: per project module, its file (relative to the working directory), its digest
    and the digest of each top-level function and class (:data:`MODULE_LEVEL` for the rest);
    ``cells``: a notebook's code cells, digested one by one. Digests here are shortened to 16
    hex characters: they name what changed, the fingerprint's key decides.
    """
    if command is None or command_type not in ("python", "notebook"):
        return {}
    if command_type == "python":
        module, _, _ = command.rpartition(".")
        return {"modules": _closure_details(command, _with_parents(module))}
    cells, imported = _notebook(Path(command))
    return {
        "cells": [_short(hashlib.sha256(c.encode("utf-8")).hexdigest()) for c in cells],
        "modules": _closure_details("", imported),
    }


def changed_parts(before: Fingerprint, after: Fingerprint) -> list[str]:
    """The parts (``code``, ``definition``, ``parameters``, ``inputs``, ``environment``) that
    differ between two fingerprints, in that order."""
    return [p for p in FINGERPRINT_PARTS if getattr(before, p) != getattr(after, p)]


#: the parts of a fingerprint, in the order explanations give them
FINGERPRINT_PARTS = ("code", "definition", "parameters", "inputs", "environment")


def _short(value: str) -> str:
    return value[:16]


# ------------------------------------------------------------------------------ python modules


@dataclass(frozen=True)
class _Module:
    """A parsed project module: its normalised digest and the modules it may import."""

    stat: _Stat
    digest: str
    imports: tuple[str, ...]
    #: the digest of each top-level function and class, and of the rest (MODULE_LEVEL)
    definitions: tuple[tuple[str, str], ...] = ()
    path: Path | None = None


_modules: dict[tuple[Path, str], _Module] = {}
# (label, module names, roots) -> (the closure's digest, its files and their stats, the digest
# of each of its modules)
_closures: dict[
    tuple[str, tuple[str, ...], tuple[Path, ...]], tuple[str, dict[Path, _Stat], dict[str, str]]
]
_closures = {}


def _stat(path: Path) -> _Stat | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


def _with_parents(module: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages too."""
    parts = module.split(".") if module else []
    return [".".join(parts[: n + 1]) for n in range(len(parts))]


_roots: dict[tuple[str, tuple[str, ...]], tuple[Path, ...]] = {}


def _project_roots() -> tuple[Path, ...]:
    """Where the project's modules are found: the working directory and sys.path under it."""
    key = (os.getcwd(), tuple(sys.path))
    if key not in _roots:
        _roots[key] = _roots_under(Path(key[0]), key[1])
    return _roots[key]


def _roots_under(cwd: Path, entries: tuple[str, ...]) -> tuple[Path, ...]:
    # An interpreter or virtualenv inside the project (its standard library, say) is installed
    # code too.
    prefixes = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)} - {cwd}
    roots = [cwd]
    for entry in entries:
        path = Path(entry or ".")
        if not path.is_absolute():
            path = cwd / path
        inside = path.is_relative_to(cwd) and not _installed(path)
        if inside and path not in roots and not any(path.is_relative_to(p) for p in prefixes):
            roots.append(path)
    return tuple(roots)


def _installed(path: Path) -> bool:
    return not _INSTALLED_FOLDERS.isdisjoint(path.parts)


def _find(module: str, roots: tuple[Path, ...]) -> tuple[Path, bool] | None:
    """The project file of ``module`` and whether it is a package, or ``None``."""
    relative = Path(*module.split("."))
    for root in roots:
        for candidate, is_package in (
            (root / relative / "__init__.py", True),
            (root / relative.with_name(relative.name + ".py"), False),
        ):
            if candidate.is_file() and not _installed(candidate):
                return candidate, is_package
    return None


def _project_code(label: str, start: Iterable[str], in_process: bool = False) -> str:
    """The digest of ``label`` and the project modules ``start`` names and imports, transitively.

    Kept until one of those files changes: a step whose code was fingerprinted before costs a
    ``stat`` per module. ``in_process``: the code runs in this process, where a module already
    imported runs as it was imported (:func:`_as_imported`), not as its file reads now.
    """
    roots = _project_roots()
    key = (label, tuple(start), roots)
    cached = _closures.get(key)
    if cached is None or any(_stat(p) != s for p, s in cached[1].items()):
        modules = _closure(key[1], roots)
        files = {m.path: m.stat for m in modules.values() if m.path is not None}
        on_disk = {n: m.digest for n, m in modules.items()}
        cached = (digest({"label": label, "modules": on_disk}), files, on_disk)
        _closures[key] = cached
    value, _, on_disk = cached
    if in_process:
        running = {n: _as_imported(n, d) for n, d in on_disk.items()}
        if running != on_disk:
            return digest({"label": label, "modules": running})
    return value


# module name -> the digest of the module as this process imported it
_imported: dict[str, str] = {}


def _as_imported(name: str, on_disk: str) -> str:
    """The digest of module ``name`` as it runs in this process.

    A module is imported once per process: edited afterwards (between two runs of a pipeline in
    one SDK or notebook session), it still runs as it was. Its digest is the one it had when this
    process first saw it imported -- at the latest when the step that imported it was
    fingerprinted -- so the fingerprint names the code that ran, and a result of the old code
    is never recorded under the new code's fingerprint.
    """
    if name not in sys.modules:
        return on_disk
    return _imported.setdefault(name, on_disk)


def _closure_details(label: str, start: Iterable[str]) -> dict[str, Any]:
    """Per module of the closure: its file, digest and top-level definitions' digests."""
    cwd = Path.cwd()
    details: dict[str, Any] = {}
    for name, module in sorted(_closure(tuple(start), _project_roots()).items()):
        path = module.path
        shown = path.relative_to(cwd).as_posix() if path and path.is_relative_to(cwd) else ""
        details[name] = {
            "path": shown or str(path or ""),
            "digest": _short(module.digest),
            "definitions": dict(module.definitions),
        }
    return details


def _closure(start: tuple[str, ...], roots: tuple[Path, ...]) -> dict[str, _Module]:
    """The project modules ``start`` names and everything they import, transitively."""
    found: dict[str, _Module] = {}
    pending = list(start)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        located = _find(name, roots)
        if located is None:
            continue
        module = _parsed(located[0], name, located[1])
        if module is None:
            continue
        found[name] = module
        pending.extend(module.imports)
    return found


def _parsed(path: Path, name: str, is_package: bool) -> _Module | None:
    """The module at ``path``, parsed once per (path, size, mtime_ns, inode)."""
    stat = _stat(path)
    if stat is None:
        return None
    cached = _modules.get((path, name))
    if cached is not None and cached.stat == stat:
        return cached
    try:
        source = path.read_bytes()
    except OSError:
        return None
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):
        # It cannot run either; its bytes still identify it.
        module = _Module(stat, hashlib.sha256(source).hexdigest(), (), path=path)
    else:
        package = name if is_package else name.rpartition(".")[0]
        whole = _tree_digest(tree)
        module = _Module(stat, whole, tuple(_imports(tree, package)), _definitions(tree), path=path)
    _modules[(path, name)] = module
    return module


def _tree_digest(tree: ast.Module) -> str:
    """The digest of a syntax tree without positions and docstrings (comments are not in it)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                # A body of only a docstring still needs a statement to be valid.
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()


def _definitions(tree: ast.Module) -> tuple[tuple[str, str], ...]:
    """Short digests of each top-level function and class of a normalised tree, and of the
    module's other statements together (:data:`MODULE_LEVEL`)."""
    named: dict[str, str] = {}
    rest: list[str] = []
    for statement in tree.body:
        dumped = ast.dump(statement)
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            named[statement.name] = _short(hashlib.sha256(dumped.encode("utf-8")).hexdigest())
        else:
            rest.append(dumped)
    named[MODULE_LEVEL] = _short(hashlib.sha256("\n".join(rest).encode("utf-8")).hexdigest())
    return tuple(sorted(named.items()))


def _imports(tree: ast.AST, package: str) -> list[str]:
    """Every module an ``import`` in ``tree`` may load, with the packages above it."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names += _with_parents(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            names += _with_parents(base)
            # ``from package import name``: name may be a submodule.
            names += [f"{base}.{a.name}" for a in node.names if base and a.name != "*"]
    return names


# ------------------------------------------------------------------------------ notebooks

_notebooks: dict[Path, tuple[_Stat, list[str], list[str]]] = {}


def _notebook(path: Path) -> tuple[list[str], list[str]]:
    """A notebook's code cells and the modules they import (cells that do not parse, say with
    a magic, import nothing we can see). A notebook that cannot be read has no cells.
    """
    path = Path.cwd() / path
    stat = _stat(path)
    cached = _notebooks.get(path)
    if cached is not None and cached[0] == stat:
        return cached[1], cached[2]
    cells: list[str] = []
    imported: list[str] = []
    try:
        notebook = json.loads(path.read_bytes())
    except (OSError, ValueError):
        notebook = {}
    for cell in notebook.get("cells", []) if isinstance(notebook, dict) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        cells.append(text)
        with contextlib.suppress(SyntaxError, ValueError):
            imported += _imports(ast.parse(text), "")
    if stat is not None:
        _notebooks[path] = (stat, cells, imported)
    return cells, imported


# ------------------------------------------------------------------------------ environment

_environments: dict[int, tuple[Mapping[str, Any], str]] = {}
# folder -> (the stats of its lock files, the digest of the first there)
_lock_digests: dict[Path, tuple[tuple[_Stat | None, ...], str | None]] = {}


def environment_digest(environment: Mapping[str, Any] | None = None) -> str:
    """The digest of the interpreter, the installed distributions, the lock file and image.

    The environment is identified once per run (its distributions do not change under a running
    pipeline), so its digest is kept per process for the mapping it was given.
    """
    if environment is None:
        environment = _process_environment()
    cached = _environments.get(id(environment))
    if cached is not None and cached[0] is environment:
        return cached[1]
    value = digest(
        {
            "python": environment.get("python", platform.python_version()),
            "implementation": environment.get("implementation", ""),
            "distributions": environment.get("distributions", []),
            "lock": _lock_digest(Path.cwd()),
            "image": os.environ.get(IMAGE_ENV, ""),
        }
    )
    _environments[id(environment)] = (environment, value)
    return value


_own_environment: list[Mapping[str, Any]] = []


def _process_environment() -> Mapping[str, Any]:
    if not _own_environment:
        _own_environment.append(environment_identity())
    return _own_environment[0]


def _lock_digest(folder: Path) -> str | None:
    """SHA-256 of the first lock file in ``folder``; read again only when a lock file changed
    (a process that runs several pipelines, a notebook's, sees an edit between them)."""
    stats = tuple(_stat(folder / name) for name in LOCK_FILES)
    cached = _lock_digests.get(folder)
    if cached is not None and cached[0] == stats:
        return cached[1]
    value = None
    for name, stat in zip(LOCK_FILES, stats, strict=True):
        if stat is None:
            continue
        try:
            value = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            break
        except OSError:
            continue
    _lock_digests[folder] = (stats, value)
    return value
