"""The package's layers, enforced: every import inside swcdata points down the layer order, no module imports
itself back through others (no cycle), and no test imports from bench/.

The order, from the bottom (a layer may import only the layers below it, and its own package):

    core, _native  <  solidity  <  similarity  <  steps  <  registry  <  engine  <  finetune  <  evaluation  <  cli
        <  synthetic

`engine` runs the steps on Ray (swcdata.engine): it stands on the steps and the registry, and the CLI on it.

`synthetic` (generated corpora for tests and benchmarks) stands on top: nothing in the package imports it.
The package root (`swcdata/__init__.py`: `__version__` and `load`) and `__main__` stand above every layer.
Imports are read from the source with `ast`, those inside
functions too (a lazy import is still a dependency), so nothing is imported to check this."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "swcdata"
LAYERS = ("core", "_native", "solidity", "similarity", "steps", "registry", "engine", "finetune", "evaluation", "cli",
          "synthetic")
RANK = {"core": 0, "_native": 0, **{name: i for i, name in enumerate(LAYERS) if i > 1}}
ROOT_MODULES = {"swcdata", "swcdata.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, is_package: bool) -> set[str]:
    """The swcdata modules that `path` imports (`from swcdata.x import y` names swcdata.x.y when that is a module)."""
    modules = _modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "swcdata")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] != "swcdata":
                continue
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
            found.update(subs or [module])
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(p, name, p.name == "__init__.py") if m != name}
            for name, p in modules.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def test_every_module_belongs_to_a_layer() -> None:
    loose = [m for m in _modules() if m not in ROOT_MODULES and _layer(m) is None]
    assert not loose, f"modules outside every layer (put each in one of {LAYERS}): {loose}"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, deps in _graph().items():
        if module in ROOT_MODULES:
            continue
        here = _layer(module)
        for dep in deps:
            there = _layer(dep)
            assert there is not None, f"{module} imports {dep}, which is in no layer"
            if there != here and RANK[there] >= RANK[here]:
                upward.append(f"{module} ({here}) -> {dep} ({there})")
    assert not upward, "imports that point up (or across) the layer order:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    # a package's __init__ importing its own modules for re-export would be a cycle only in name: none here
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_a_planted_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker is not vacuous: a core module that imports a step is caught."""
    planted = PACKAGE / "core" / "_planted_for_test.py"
    planted.write_text("def f():\n    from swcdata.steps.dedup import dedup\n    return dedup\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match=r"swcdata.core._planted_for_test \(core\) -> swcdata.steps.dedup"):
            test_imports_point_down_the_layers()
    finally:
        planted.unlink()


def test_tests_never_import_from_bench() -> None:
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "bench"]
    assert not offenders, "tests import from bench/ (move what they need into the package):\n" + "\n".join(offenders)
