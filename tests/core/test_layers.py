"""The core is a stack: each module imports only what lies below it, and nothing imports in a circle.

The layers, ground first (see docs/writing-plugins.md, "Where things live"):

ground -> services -> model -> building -> run -> engine -> plugin API -> composition root -> face

Every import of a magnus module counts -- at module level, under ``TYPE_CHECKING``, or inside a
function -- and an import inside a function is allowed only in the face (the command line, the
SDK and the interaction API load what a command needs when it runs). Plugin packages must not
import in circles either.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
CORE = PACKAGES / "core" / "src"

GROUND, SERVICES, MODEL, BUILDING, RUN, ENGINE, PLUGIN_API, ROOT, FACE = range(9)
LAYER_NAMES = [
    "ground",
    "services",
    "model",
    "building",
    "run",
    "engine",
    "plugin API",
    "composition root",
    "face",
]

#: module (or package, for everything in it) -> layer
LAYERS: dict[str, int] = {
    "magnus.exceptions": GROUND,
    "magnus.markers": GROUND,
    "magnus.run_ids": GROUND,
    "magnus.internal_names": GROUND,
    "magnus.orchestration": GROUND,
    "magnus.owner": GROUND,
    "magnus.interrupts": GROUND,
    "magnus.services": GROUND,
    "magnus.yaml_reader": GROUND,
    "magnus.time_text": GROUND,
    "magnus.redaction": SERVICES,
    "magnus.runlog": SERVICES,
    "magnus.catalog": SERVICES,
    "magnus.secrets": SERVICES,
    "magnus.secret_parameters": SERVICES,
    "magnus.tracking": SERVICES,
    "magnus.task_output": SERVICES,
    "magnus.tasks": SERVICES,
    "magnus.notebook": SERVICES,
    "magnus.parameters": SERVICES,
    "magnus.scopes": SERVICES,
    "magnus.identity": SERVICES,
    "magnus.fingerprints": SERVICES,
    "magnus.objects": SERVICES,
    "magnus.config": SERVICES,
    "magnus.contracts": SERVICES,
    "magnus.nodes": MODEL,
    "magnus.graph": MODEL,
    "magnus.composites": MODEL,
    "magnus.control_flow": MODEL,
    "magnus.building": BUILDING,
    "magnus.checks": BUILDING,
    "magnus.jobs": BUILDING,
    "magnus.context": RUN,
    "magnus.observers": RUN,
    "magnus.executors": ENGINE,
    "magnus.hookspecs": PLUGIN_API,
    "magnus.integration": PLUGIN_API,
    "magnus.plugins": ROOT,
    "magnus.builtins": ROOT,
    "magnus.entrypoints": ROOT,
    "magnus.orchestrated": ROOT,
    "magnus.orchestrated_batches": ROOT,
    "magnus.orchestrated_lifecycle": ROOT,
    "magnus": FACE,
    "magnus.__main__": FACE,
    "magnus.cli": FACE,
    "magnus.sdk": FACE,
    "magnus.interaction": FACE,
    "magnus.console": FACE,
    "magnus.progress": FACE,
    "magnus.reports": FACE,
    "magnus.explaining": FACE,
    "magnus.pictures": FACE,
    "magnus.report_data": FACE,
    "magnus.report_html": FACE,
    "magnus.run_diff": FACE,
    "magnus.testing": FACE,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    if node.level:
        package = module.split(".")
        if path.name != "__init__.py":
            package.pop()
        base = ".".join(package[: len(package) - node.level + 1])
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    # ``from magnus import hookspecs`` names a module; ``from magnus import hookimpl`` does not.
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def _imports(module: str, path: Path, prefix: str) -> Iterator[tuple[list[str], int, str]]:
    """(what one import statement names, line, how: module / type / function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, how: str) -> Iterator[tuple[list[str], int, str]]:
        for child in ast.iter_child_nodes(node):
            inner = how
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = "function"
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = "type" if how == "module" else how
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == prefix:
                        yield [alias.name], child.lineno, how
            elif isinstance(child, ast.ImportFrom):
                targets = _resolve(module, path, child)
                if targets[0].split(".")[0] == prefix:
                    yield targets, child.lineno, how
            yield from walk(child, inner)

    yield from walk(tree, "module")


def _known(target: str, modules: set[str]) -> str | None:
    """The module ``target`` names (``magnus.x.y`` may be a name in module ``magnus.x``)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def _edges(root: Path, prefix: str) -> dict[str, dict[str, list[tuple[int, str]]]]:
    found = dict(_modules(root / prefix if (root / prefix).is_dir() else root))
    if (root / prefix).is_dir():
        found = {f"{prefix}.{m}" if m else prefix: p for m, p in found.items()}
    names = set(found)
    edges: dict[str, dict[str, list[tuple[int, str]]]] = {m: {} for m in names}
    for module, path in found.items():
        for targets, line, how in _imports(module, path, prefix):
            # ``from magnus import scopes`` imports the module ``magnus.scopes``;
            # ``from magnus import hookimpl`` imports a name of ``magnus`` itself.
            submodules = [t for t in targets[1:] if t in names]
            imported = submodules or [_known(targets[0], names)]
            for known in imported:
                if known is None or known == module:
                    continue
                if (line, how) not in edges[module].get(known, []):
                    edges[module].setdefault(known, []).append((line, how))
    return edges


def _cycles(edges: dict[str, dict[str, list[tuple[int, str]]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_every_core_module_has_a_layer() -> None:
    unplaced = [m for m, _ in _modules(CORE) if m.startswith("magnus") and _layer(m) is None]
    assert unplaced == [], "add these modules to LAYERS"


def test_core_imports_go_down_the_stack() -> None:
    problems = []
    for module, targets in sorted(_edges(CORE, "magnus").items()):
        layer = _layer(module)
        assert layer is not None
        for target, places in sorted(targets.items()):
            target_layer = _layer(target)
            assert target_layer is not None
            for line, how in places:
                where = f"{module}:{line} imports {target}"
                if target_layer > layer:
                    problems.append(
                        f"{where} ({how}): {LAYER_NAMES[layer]} climbs to "
                        f"{LAYER_NAMES[target_layer]}"
                    )
                elif how == "function" and layer != FACE:
                    problems.append(f"{where} inside a function, below the face")
    assert problems == []


@pytest.mark.parametrize(
    "root, prefix",
    [
        (CORE, "magnus"),
        (PACKAGES / "catalog-s3" / "src", "magnus_catalog_s3"),
        (PACKAGES / "secrets-vault" / "src", "magnus_secrets_vault"),
        (PACKAGES / "tracker-mlflow" / "src", "magnus_tracker_mlflow"),
        (PACKAGES / "executor-argo" / "src", "magnus_executor_argo"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_no_package_imports_in_a_circle(root: Path, prefix: str) -> None:
    assert _cycles(_edges(root, prefix)) == []


def test_the_core_s_packages_do_not_import_each_other_in_a_circle() -> None:
    # Taken whole, a package (runlog/, executors/, ...) must sit on one side of what it imports.
    packages = {p.name for p in (CORE / "magnus").iterdir() if (p / "__init__.py").is_file()}

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in packages else module

    collapsed: dict[str, dict[str, list[tuple[int, str]]]] = {}
    for module, targets in _edges(CORE, "magnus").items():
        collapsed.setdefault(unit(module), {})
        for target, places in targets.items():
            if unit(target) != unit(module):
                collapsed[unit(module)].setdefault(unit(target), []).extend(places)
                collapsed.setdefault(unit(target), {})
    assert _cycles(collapsed) == []


def test_the_model_does_not_load_the_plugin_manager() -> None:
    code = (
        "import sys, magnus.graph, magnus.composites, magnus.building\n"
        "loaded = sorted(m for m in ('magnus.plugins', 'magnus.entrypoints', 'magnus.executors',"
        " 'pluggy') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
