"""Every place the plug-in changes a host's or Sacred's behaviour from outside, in one table.

The plug-in extends the hosts through their registries and subclasses; where that is not enough it
replaces or adds one named thing. Each such intervention is listed here with a check that the thing it
relies on is still what it was written against (a name, a signature, a source line). The check runs
where the intervention is applied, so a host or Sacred release that moved it fails at start-up in one
line instead of mid-run, and `r3dm-epymarl install --check` reports them all.

| name | what | applied in |
|---|---|---|
| run-loop | the host's `run_sequential`, rewritten with hooks (exact resume, SIGTERM, progress) | runs/loop.py |
| sacred-run-commandline | `sacred.Experiment.run_commandline` wrapped: observers attached to the host's run | hosts/sacred.py |
| sacred-observer-hooks | a file observer's `save_json` made atomic, `heartbeat_event` given copies | hosts/sacred.py |
| sacred-capture-mode | `SETTINGS.CAPTURE_MODE` "fd" -> "sys" inside Slurm jobs | hosts/sacred.py |
| zoo-results-path | `pymarlzooplus.main.get_caller_path` -> the run's base folder | hosts/zoo.py |
| epymarl-smaclite | a stand-in `smaclite` module where EPyMARL's envs import it and it is not installed | hosts/epymarl.py |
| host-mixer-registry | `modules.mixers.REGISTRY` created from the hosts' VDN and QMIX mixers | hosts/base.py |
| excepthook | `sys.excepthook`: a stopped run's one line instead of a traceback (patched main.py) | runs/interrupt.py |
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Callable

from r3dm_epymarl.errors import UserError


@dataclass(frozen=True)
class Intervention:
    name: str
    target: str  # what is replaced or added
    applied_in: str
    check: Callable[..., str | None]  # None when the target is as expected, else what changed
    hosts: tuple[str, ...] = ()  # the hosts it concerns (empty: all, or Sacred / Python itself)


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def _expect_params(label: str, func, expected: list[str]) -> str | None:
    if not callable(func):
        return f"{label} is gone"
    try:
        found = _params(func)
    except (TypeError, ValueError):
        return None  # a builtin without a signature: nothing to compare
    return None if found == expected else f"{label} takes ({', '.join(found)}), not ({', '.join(expected)})"


def _check_run_commandline(host=None) -> str | None:
    from sacred import Experiment

    return _expect_params("sacred.Experiment.run_commandline", getattr(Experiment, "run_commandline", None),
                          ["self", "argv"])


def _check_observer_hooks(host=None) -> str | None:
    from sacred.observers import FileStorageObserver

    return (_expect_params("FileStorageObserver.save_json", getattr(FileStorageObserver, "save_json", None),
                           ["self", "obj", "filename"])
            or _expect_params("FileStorageObserver.heartbeat_event",
                              getattr(FileStorageObserver, "heartbeat_event", None),
                              ["self", "info", "captured_out", "beat_time", "result"]))


def _check_capture_mode(host=None) -> str | None:
    from sacred import SETTINGS

    if "CAPTURE_MODE" not in SETTINGS:
        return "sacred.SETTINGS has no CAPTURE_MODE"
    from sacred.stdout_capturing import get_stdcapturer

    try:
        get_stdcapturer("sys")
    except Exception as exc:  # noqa: BLE001 - whatever Sacred raises for an unknown mode
        return f"Sacred has no 'sys' capture mode ({exc})"
    return None


def _check_zoo_results_path(host=None) -> str | None:
    try:
        import pymarlzooplus.main as zoo_main
    except ImportError:
        return None  # not installed: nothing is applied
    return (_expect_params("pymarlzooplus.main.get_caller_path", getattr(zoo_main, "get_caller_path", None), [])
            or (None if callable(getattr(zoo_main, "pymarlzooplus", None)) else "pymarlzooplus.main.pymarlzooplus is gone"))


def _check_smaclite(host=None) -> str | None:
    """The stand-in is an empty module whose attributes raise ImportError on use: it satisfies a
    module-level `import smaclite` only. A module-level `from smaclite import X` or `import smaclite.sub`
    in the host's envs package would fail at import with it, so every env would be lost."""
    if host is None or getattr(host, "name", None) != "epymarl":
        return None
    import ast

    envs = host.src / "envs"
    if not (envs / "__init__.py").is_file():
        return f"{envs / '__init__.py'} is gone (EPyMARL's env registry)"
    for path in sorted(envs.glob("*.py")):
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:  # module level: what runs when the host imports its envs
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "smaclite":
                return f"envs/{path.name} does `from {node.module} import ...`, which the stand-in cannot provide"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("smaclite."):
                        return f"envs/{path.name} does `import {alias.name}`, which the stand-in cannot provide"
    return None


def _check_mixers(host=None) -> str | None:
    if host is None:
        return None
    missing = []
    for module, cls in (("modules.mixers.vdn", "VDNMixer"), ("modules.mixers.qmix", "QMixer")):
        try:
            if not hasattr(host.module(module), cls):
                missing.append(f"{module}.{cls}")
        except ImportError:
            missing.append(module)
    return f"the host has no {', '.join(missing)}" if missing else None


def _check_excepthook(host=None) -> str | None:
    """The one-line hook calls the hook it replaces with (type, value, traceback) for any other error."""
    hook = sys.excepthook
    if not callable(hook):
        return "sys.excepthook is not callable"
    try:
        inspect.signature(hook).bind(None, None, None)
    except TypeError:
        return f"sys.excepthook ({getattr(hook, '__qualname__', hook)}) does not take (type, value, traceback)"
    except ValueError:
        pass  # a builtin without a signature (Python's own hook)
    return None


def _check_run_loop(host=None) -> str | None:
    if host is None:
        return None
    from r3dm_epymarl.runs.loop_rewrite import rewrite_problem

    return rewrite_problem(host)


INTERVENTIONS = (
    Intervention("run-loop", "<host>.run.run_sequential", "runs/loop.py", _check_run_loop),
    Intervention("sacred-run-commandline", "sacred.Experiment.run_commandline", "hosts/sacred.py",
                 _check_run_commandline),
    Intervention("sacred-observer-hooks", "FileStorageObserver.save_json / heartbeat_event (per observer)",
                 "hosts/sacred.py", _check_observer_hooks),
    Intervention("sacred-capture-mode", "sacred.SETTINGS.CAPTURE_MODE (inside Slurm jobs)",
                 "hosts/sacred.py", _check_capture_mode),
    Intervention("zoo-results-path", "pymarlzooplus.main.get_caller_path", "hosts/zoo.py",
                 _check_zoo_results_path, hosts=("pymarlzooplus",)),
    Intervention("epymarl-smaclite", "sys.modules['smaclite'] (a stand-in, when not installed)", "hosts/epymarl.py",
                 _check_smaclite, hosts=("epymarl",)),
    Intervention("host-mixer-registry", "modules.mixers.REGISTRY (created)", "hosts/base.py", _check_mixers),
    Intervention("excepthook", "sys.excepthook (patched main.py only)", "runs/interrupt.py", _check_excepthook),
)
BY_NAME = {i.name: i for i in INTERVENTIONS}


def problem(name: str, host=None) -> str | None:
    return BY_NAME[name].check(host)


def require(name: str, host=None) -> None:
    """Called where the intervention is applied: one line, before it is, if its target changed."""
    found = problem(name, host)
    if found:
        item = BY_NAME[name]
        raise UserError(f"r3dm-epymarl cannot apply '{name}' ({item.target}, in {item.applied_in}): {found}; "
                        "this host or Sacred version is not one the plug-in supports (see README: hosts)")


def report(host=None) -> list[tuple[Intervention, str]]:
    """(intervention, "ok" or what changed) for each, against `host` (None: Sacred and Python only)."""
    rows = []
    for item in INTERVENTIONS:
        if item.hosts and (host is None or host.name not in item.hosts):
            rows.append((item, "not used by this host" if host is not None else "no host given"))
            continue
        try:
            rows.append((item, item.check(host) or "ok"))
        except Exception as exc:  # noqa: BLE001 - a check that cannot run says why
            rows.append((item, f"cannot check: {type(exc).__name__}: {exc}"))
    return rows
