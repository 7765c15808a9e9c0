"""The house points one way: datatools <- training <- defectkit, and no import circle anywhere.

Every import statement counts, also those inside functions (they run the moment the function does),
and so do module names handed to importlib as strings.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datatools", "training", "defectkit")


def module_files() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Our modules that `path` imports: `from a.b import c` is `a.b.c` when that is a module, else `a.b`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known:
            # a module named in a string (importlib.import_module, registries); bare package names such as
            # "training" or "defectkit" are words in messages more often than imports
            targets = [node.value] if "." in node.value else []
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(p, m, known) for m, p in files.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_layers_point_one_way():
    g = graph()
    rank = {"datatools": 0, "training": 1, "defectkit": 2}
    upward = [
        f"{m} -> {t}"
        for m, targets in g.items()
        for t in sorted(targets)
        if rank[t.split(".")[0]] > rank[m.split(".")[0]]
    ]
    assert upward == []


def test_models_hold_architectures_only():
    g = graph()
    reach = {t for m, targets in g.items() if m.startswith("training.models") for t in targets}
    assert not {t for t in reach if t.startswith(("training.segmentation", "training.anomaly", "training.pipelines"))}


def test_checker_sees_lazy_and_string_imports(tmp_path):
    """The checker itself: a function-level import and an importlib string both count, and a cycle is found."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from training import b\n")
    b = tmp_path / "b.py"
    b.write_text("import importlib\nimportlib.import_module('training.a')\n")
    known = {"training.a", "training.b", "training"}
    g = {"training.a": imports_of(a, "training.a", known), "training.b": imports_of(b, "training.b", known)}
    assert g == {"training.a": {"training.b"}, "training.b": {"training.a"}}
    assert cycles(g) == [["training.a", "training.b"]]
