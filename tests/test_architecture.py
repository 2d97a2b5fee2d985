"""The layout's rules, checked on the source: no import circles, layers import only downwards, files stay
small enough to read.

Every `import` counts, wherever it is written (module level, inside a function, under TYPE_CHECKING): a
deferred import still ties two modules together, so it cannot hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gemid"
MAX_LINES = 500  # longer only with a reason in the file's opening comment
HARD_MAX_LINES = 600  # never longer
WHY_LONGER = "longer than 500 lines"  # the phrase that opens such a reason


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path) -> set[str]:
    """Every module `name` imports (external ones by their top-level name, gemid ones in full)."""
    out: set[str] = set()
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                module = ".".join(parent + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES)
    return {m if m.startswith("gemid") else m.split(".")[0] for m in out} - {name}


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a set of modules that
    import each other round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v] & graph.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_the_package_and_finds_a_circle():
    assert {"gemid.report", "gemid.vision.pipeline", "gemid.serve.app", "gemid.gemmology.rerank"} <= GRAPH.keys()
    assert "gemid.report" in GRAPH["gemid.vision.pipeline"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(GRAPH) == []


def _importers(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{name} imports {m}" for name, deps in GRAPH.items() if name.startswith(prefix)
                  for m in deps if m.startswith(forbidden))


def test_vision_never_imports_torch_or_training():
    """vision/ is the runtime a lab PC installs: ONNX Runtime, no PyTorch."""
    assert _importers("gemid.vision", ("torch", "gemid.training", "albumentations")) == []


def test_layers_import_only_downwards():
    """report/errors ← gemmology ← vision ← serve; training and datasets beside serve; nothing imports serve."""
    assert _importers("gemid.report", ("gemid.vision", "gemid.gemmology", "gemid.serve", "gemid.training",
                                       "gemid.datasets")) == []
    assert _importers("gemid.errors", ("gemid.",)) == []
    assert _importers("gemid.gemmology", ("gemid.vision", "gemid.serve", "gemid.training", "gemid.datasets")) == []
    assert _importers("gemid.vision", ("gemid.serve", "gemid.datasets")) == []
    assert _importers("gemid.datasets", ("gemid.serve", "gemid.training")) == []
    assert _importers("gemid.training", ("gemid.serve",)) == []


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.js")]),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_stay_small_enough_to_read(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= HARD_MAX_LINES, f"{len(lines)} lines"
    if len(lines) > MAX_LINES:
        opening = "\n".join(lines[:15])
        assert WHY_LONGER in opening, f"{len(lines)} lines and no '{WHY_LONGER} because …' in its opening comment"
