"""No import circles inside the package: every import, at module level or inside a function, is an edge.

A circle that only works because one side imports lazily still ties the two modules together: neither
can be understood, tested or moved alone. The graph is built from the source (ast), so nothing is run.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "r3dm_epymarl"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


def module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports (a `from pkg import sub` names the submodule when it is one)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
            # `from pkg import submodule` imports the submodule (a parent package's __init__ runs for any
            # submodule import, which is not an edge here); `from pkg import name` imports pkg itself.
            if any(target not in known for target in targets):
                targets.append(module)
        else:
            continue
        for target in targets:
            # the deepest package module the target names: r3dm_epymarl.a.b.func -> r3dm_epymarl.a.b
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:  # the package root too: nothing may import back up to it
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    names = module_names()
    return {name: imports_of(name, path, set(names)) for name, path in names.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_circle():
    found = cycles(graph())
    assert not found, "import circles (each line: modules that import each other, directly or not):\n" + \
        "\n".join(" <-> ".join(c) for c in found)


def test_the_walk_sees_a_planted_circle_through_a_function_level_import():
    edges = {"a": {"b"}, "b": {"c"}, "c": set()}
    assert cycles(edges) == []
    edges["c"] = {"a"}
    assert cycles(edges) == [["a", "b", "c"]]
    # and the parser records imports inside functions, relative ones included
    names = module_names()
    assert "r3dm_epymarl.registry" in imports_of("r3dm_epymarl.launcher", names["r3dm_epymarl.launcher"], set(names))


# The layers, bottom to top: what a run and an update use (runs/, hosts/, learners/, intrinsic/, ...) must not
# import the entry points above them (the launcher, the CLI, preflight, the package root) or the experiment
# tools built on them; the world model does not import its accelerator.
LOWER = ("runs", "hosts", "world_model", "intrinsic", "learners", "modules", "controllers", "roles", "envs")
UPPER = {"r3dm_epymarl", "r3dm_epymarl.preflight", "r3dm_epymarl.launcher", "r3dm_epymarl.cli",
         "r3dm_epymarl.__main__"}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(edges.items()):
        if module.split(".")[1:2] and module.split(".")[1] in LOWER:
            found += [f"{module} -> {t}" for t in sorted(targets)
                      if t in UPPER or t.startswith("r3dm_epymarl.experiments")]
        if module.startswith("r3dm_epymarl.world_model") and not module.startswith("r3dm_epymarl.world_model.accel"):
            found += [f"{module} -> {t}" for t in sorted(targets) if t.startswith("r3dm_epymarl.world_model.accel")]
    return found


def test_no_import_runs_back_up_the_layers():
    found = upward_imports(graph())
    assert not found, "imports back up the layers:\n" + "\n".join(found)
    # the rule sees the edge this package had (the hooked loop importing preflight)
    assert upward_imports({"r3dm_epymarl.runs.loop": {"r3dm_epymarl.preflight"}}) == [
        "r3dm_epymarl.runs.loop -> r3dm_epymarl.preflight"]
