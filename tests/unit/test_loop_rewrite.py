"""The host-loop rewrite is checked at install against the hosts' own `run_sequential` and refuses an
altered one (a renamed local the hooks read, a `continue` or `break` that would skip the
end-of-iteration hook) with one line, keeping the host's loop (models-only resume), never mid-run."""
from __future__ import annotations

import inspect
import os
import types
from pathlib import Path

import pytest

from r3dm_epymarl.runs import loop, loop_rewrite


def zoo_source() -> str:
    run = pytest.importorskip("pymarlzooplus.run")
    return inspect.getsource(run.run_sequential)


def epymarl_source() -> str:
    root = os.environ.get("EPYMARL_PATH") or str(Path(__file__).resolve().parents[3] / "shared/upstream/epymarl")
    path = Path(root) / "src" / "run.py"
    if not path.is_file():
        pytest.skip("no EPyMARL checkout (EPYMARL_PATH)")
    import ast  # only its source is read, nothing is run

    tree = ast.parse(path.read_text())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_sequential"]
    return ast.get_source_segment(path.read_text(), function)


SOURCES = {"pymarlzooplus": zoo_source, "epymarl": epymarl_source}


@pytest.mark.parametrize("host", SOURCES)
def test_both_hosts_loops_are_accepted(host):
    tree = loop_rewrite.rewrite(SOURCES[host]())
    calls = {n.func.attr for n in __import__("ast").walk(tree)
             if hasattr(n, "func") and getattr(n.func, "value", None) is not None
             and getattr(n.func.value, "id", None) == loop_rewrite.HOOKS_NAME}
    assert calls == {"select", "initial", "restore", "save_path", "end_of_iteration", "finished"}


def _first_loop_line(source: str) -> tuple[int, str]:
    lines = source.splitlines()
    i = next(k for k, line in enumerate(lines) if line.lstrip().startswith("while "))
    body = next(line for line in lines[i + 1:] if line.strip() and not line.lstrip().startswith("#"))
    return i, body[: len(body) - len(body.lstrip())]


@pytest.mark.parametrize("host", SOURCES)
@pytest.mark.parametrize("change, fragment", [
    ("rename buffer", "binds no buffer"),
    ("continue", "has a `continue`"),
    ("break in an if", "has a `break`"),
])
def test_an_altered_loop_is_refused(host, change, fragment):
    source = SOURCES[host]()
    if change == "rename buffer":
        source = source.replace("buffer", "replay_memory")
    else:
        lines = source.splitlines()
        i, indent = _first_loop_line(source)
        extra = [f"{indent}if runner.t_env < 0:", f"{indent}    continue"] if change == "continue" else \
                [f"{indent}if runner.t_env < 0:", f"{indent}    break"]
        source = "\n".join(lines[: i + 1] + extra + lines[i + 1:])
    with pytest.raises(ValueError, match=fragment):
        loop_rewrite.rewrite(source)


def test_a_continue_inside_a_nested_loop_is_fine():
    source = zoo_source()
    lines = source.splitlines()
    i, indent = _first_loop_line(source)
    nested = [f"{indent}for _ in range(2):", f"{indent}    continue"]
    loop_rewrite.rewrite("\n".join(lines[: i + 1] + nested + lines[i + 1:]))


def test_install_refuses_in_one_line_and_keeps_the_hosts_loop(tmp_path, capsys, monkeypatch):
    # A host version whose loop may skip the hook: its source is a real file, as a host's is.
    (tmp_path / "altered_run.py").write_text(
        "def run_sequential(args, logger):\n"
        "    episode = 0\n    last_test_T = 0\n    last_log_T = 0\n    model_save_time = 0\n"
        "    runner = learner = buffer = None\n"
        "    while runner is None:\n"
        "        save_path = 'x'\n"
        "        if episode > 3:\n            continue\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import altered_run

    original = altered_run.run_sequential
    assert loop.install(altered_run, "fakehost", check=lambda args, host: None) is False
    assert altered_run.run_sequential is original
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("r3dm-epymarl: exact resume is off for this fakehost version") and "`continue`" in line
