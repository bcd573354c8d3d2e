"""The five changes `runs/loop.py` makes to a host's own `run_sequential` (its docstring lists them),
done on the function's syntax tree: `rewrite(source)` returns the hooked tree, or raises ValueError
naming what the host's loop lacks; `rewrite_problem(host)` says so without installing anything (for
`install --check` and hosts/interventions.py)."""
from __future__ import annotations

import ast
import inspect
import textwrap

from r3dm_epymarl.runs import state

HOOKS_NAME = "__r3dm_epymarl_run_hooks__"


def _call(method: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Attribute(value=ast.Name(HOOKS_NAME, ast.Load()), attr=method, ctx=ast.Load()),
                    args=list(args), keywords=[])


def _locals() -> ast.Call:
    return ast.Call(func=ast.Name("locals", ast.Load()), args=[], keywords=[])


# What the hooks read from the hooked function's locals (RunHooks: restore, end_of_iteration, _save);
# a host version that binds one under another name is refused at install, never found out mid-run.
HOOKED_LOCALS = ("args", "runner", "learner", "buffer", "logger", "episode", "model_save_time")


def _bound_names(function: ast.FunctionDef) -> set[str]:
    names = {a.arg for a in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs)}
    return names | {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _skips_the_end(statements) -> str | None:
    """'continue' or 'break' if one of these statements leaves the loop body early (nested loops and
    functions have their own), so that the end-of-iteration hook would not run."""
    for statement in statements:
        if isinstance(statement, (ast.Continue, ast.Break)):
            return "continue" if isinstance(statement, ast.Continue) else "break"
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While, ast.FunctionDef, ast.AsyncFunctionDef,
                                  ast.ClassDef, ast.Lambda)):
            found = _skips_the_end(getattr(statement, "orelse", []))  # a loop's else belongs to the outer body
        else:
            found = _skips_the_end([c for c in ast.iter_child_nodes(statement) if isinstance(c, ast.stmt)]
                                   + [h for h in getattr(statement, "handlers", [])])
        if found:
            return found
    return None


def rewrite(source: str) -> ast.Module:
    """The host's `run_sequential` source with the hooks added; ValueError if its shape is unknown."""
    module = ast.parse(textwrap.dedent(source))
    (function,) = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    body = function.body
    counters = [i for i, s in enumerate(body)
                if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
                and s.targets[0].id in state.LOOP_COUNTERS]
    found = {body[i].targets[0].id for i in counters}
    loops = [s for s in body if isinstance(s, ast.While)]
    if found != set(state.LOOP_COUNTERS) or len(loops) != 1:
        missing = sorted(set(state.LOOP_COUNTERS) - found)
        raise ValueError(f"run_sequential has {'no counter ' + ', '.join(missing) if missing else 'no single while loop'}")
    for i in counters:
        name = body[i].targets[0].id
        body[i].value = _call("initial", ast.Constant(name), body[i].value)
    loop = loops[0]
    missing = [name for name in HOOKED_LOCALS if name not in _bound_names(function)]
    if missing:
        raise ValueError(f"run_sequential binds no {', '.join(missing)} (the hooks read them)")
    if skip := _skips_the_end(loop.body):
        raise ValueError(f"run_sequential's loop body has a `{skip}`, which would skip the end-of-iteration hook")
    save_paths = [n for n in ast.walk(loop) if isinstance(n, ast.Assign) and len(n.targets) == 1
                  and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "save_path"]
    if len(save_paths) != 1:
        raise ValueError("run_sequential's loop has no single `save_path = ...`")
    save_paths[0].value = _call("save_path", save_paths[0].value)
    loop.body.append(ast.Expr(_call("end_of_iteration", _locals())))
    body.insert(body.index(loop) + 1, ast.Expr(_call("finished", _locals())))
    body.insert(counters[0], ast.Expr(_call("restore", _locals())))
    body.insert(0, ast.Expr(_call("select", ast.Name("args", ast.Load()))))
    return ast.fix_missing_locations(module)


def rewrite_problem(host) -> str | None:
    """None if the host's `run_sequential` can be hooked, else why not (the run then resumes models only)."""
    try:
        original = host.module("run").run_sequential
    except (ImportError, AttributeError) as exc:
        return f"the host has no run.run_sequential ({exc})"
    try:
        rewrite("".join(inspect.getsourcelines(original)[0]))
    except (OSError, TypeError, ValueError) as exc:
        return str(exc)
    return None
