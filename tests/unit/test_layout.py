"""The shape of the package: no import cycles, and the size budget of STYLE.md (modules under about
600 lines, functions under about 100), with any exception named here together with its reason."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tunesmith"
MODULE_LINES, FUNCTION_LINES = 600, 100
# "path:function" or "path" -> why it may be longer. Empty today; a training loop may take 150.
EXCEPTIONS: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in its body (lazy imports count: a cycle
    through a function-level import is still a cycle in the design)."""

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                if target.split(".")[0] == "tunesmith" and (found := owner(target)) and found != mod:
                    graph[mod].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "tunesmith"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "sub" / "b.py").write_text("from tunesmith.sub.a import f\n")
    graph = import_graph({"tunesmith": pkg / "__init__.py", "tunesmith.sub": pkg / "sub" / "__init__.py",
                          "tunesmith.sub.a": pkg / "sub" / "a.py", "tunesmith.sub.b": pkg / "sub" / "b.py"})
    assert graph["tunesmith.sub.a"] == {"tunesmith.sub.b"} and graph["tunesmith.sub.b"] == {"tunesmith.sub.a"}
    assert cycles(graph) == [["tunesmith.sub.a", "tunesmith.sub.b"]]


def test_no_import_cycles_inside_the_package():
    mods = _modules()
    assert "tunesmith.recipes.sft" in mods and len(mods) > 50, f"the package was not found at {PACKAGE}"
    found = cycles(import_graph(mods))
    assert found == [], f"import cycles: {found}"


def test_modules_and_functions_keep_the_size_budget():
    over = []
    assert (PACKAGE / "config.py").is_file(), f"the package was not found at {PACKAGE}"
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MODULE_LINES and rel not in EXCEPTIONS:
            over.append(f"{rel}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > FUNCTION_LINES and f"{rel}:{node.name}" not in EXCEPTIONS:
                    over.append(f"{rel}:{node.lineno} {node.name}: {size} lines")
    assert over == [], "over the size budget (split it, or name it in EXCEPTIONS with the reason):\n" + "\n".join(over)
