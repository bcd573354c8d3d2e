"""Every intervention of the plug-in in a host or in Sacred is listed in hosts/interventions.py and
checked where it is applied: against a host or Sacred that changed the thing it relies on, the plug-in
says so in one line before anything runs (and `install --check` reports it), never mid-run."""
import os
import re
import shutil
from pathlib import Path

import pytest

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.hosts import interventions
from tests.helpers import LBF_KEY, SHORT_RUN, cli, run_ok

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
needs_epymarl = pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)")


def test_the_table_names_each_intervention_once_with_where_it_is_applied():
    names = [item.name for item in interventions.INTERVENTIONS]
    assert len(names) == len(set(names)) == 8
    package = os.path.dirname(interventions.__file__).rsplit(os.sep, 1)[0]
    for item in interventions.INTERVENTIONS:
        assert os.path.isfile(os.path.join(package, item.applied_in)), item.applied_in
        assert item.name in interventions.__doc__  # the module's table lists it


@pytest.fixture
def checkout(tmp_path):
    if not EPYMARL_PATH:
        pytest.skip("EPYMARL_PATH is not set")
    dest = tmp_path / "epymarl"
    shutil.copytree(EPYMARL_PATH, dest, ignore=shutil.ignore_patterns("results", "__pycache__"))
    return dest


@needs_epymarl
def test_install_check_reports_every_intervention_ok_on_the_supported_checkout(checkout):
    run_ok(cli("install", str(checkout)))
    proc = cli("install", "--check", str(checkout))
    run_ok(proc)
    states = dict(re.findall(r"^intervention (\S+) .*: (.*)$", proc.stdout, re.M))
    assert set(states) == set(interventions.BY_NAME)
    assert states.pop("zoo-results-path") == "not used by this host"
    assert set(states.values()) == {"ok"}, states


@needs_epymarl
def test_an_altered_checkout_is_reported_by_install_check_and_refused_by_run_in_one_line(checkout):
    """EPyMARL with its QMIX mixer class and its loop counter `model_save_time` renamed: `install
    --check` names both; `run` stops at the mixer registry, before a Sacred run exists."""
    for path in (checkout / "src").rglob("*.py"):  # the host renames its QMIX mixer class everywhere
        path.write_text(re.sub(r"\bQMixer\b", "QMixerV2", path.read_text()))
    run_py = checkout / "src" / "run.py"
    run_py.write_text(run_py.read_text().replace("model_save_time", "last_save_t"))
    run_ok(cli("install", str(checkout)))
    proc = cli("install", "--check", str(checkout))
    assert proc.returncode == 1
    states = dict(re.findall(r"^intervention (\S+) .*: (.*)$", proc.stdout, re.M))
    assert states["host-mixer-registry"] == "the host has no modules.mixers.qmix.QMixer"
    assert states["run-loop"] == "run_sequential has no counter model_save_time"
    run = cli("run", "--epymarl", str(checkout), "--config=r3dm_qmix", "--env-config=gymma", "with",
              f"env_args.key={LBF_KEY}", *SHORT_RUN, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    (line,) = run.stderr.strip().splitlines()[-1:]
    assert line.endswith("r3dm-epymarl cannot apply 'host-mixer-registry' (modules.mixers.REGISTRY (created), in "
                         "hosts/base.py): the host has no modules.mixers.qmix.QMixer; this host or Sacred version "
                         "is not one the plug-in supports (see README: hosts)"), line
    assert not list(checkout.glob("results/sacred/*/*/*/run.json"))


def test_a_changed_sacred_run_commandline_stops_the_observer_hook_before_it_is_applied(monkeypatch):
    from sacred import Experiment

    from r3dm_epymarl.hosts import sacred as observers

    monkeypatch.setattr(Experiment, "run_commandline", lambda self, argv=None, options=None: None)
    monkeypatch.setitem(observers._state, "installed", False)
    with pytest.raises(UserError, match=r"cannot apply 'sacred-run-commandline' .*: sacred.Experiment.run_commandline "
                                        r"takes \(self, argv, options\), not \(self, argv\)"):
        observers.install()
    assert observers._state["installed"] is False


def test_a_changed_sacred_observer_or_settings_is_named(monkeypatch):
    from sacred import SETTINGS
    from sacred.observers import FileStorageObserver

    assert interventions.problem("sacred-observer-hooks") is None
    monkeypatch.setattr(FileStorageObserver, "heartbeat_event", lambda self, info, beat_time, result: None)
    assert interventions.problem("sacred-observer-hooks") == (
        "FileStorageObserver.heartbeat_event takes (self, info, beat_time, result), not "
        "(self, info, captured_out, beat_time, result)")
    assert interventions.problem("sacred-capture-mode") is None
    import sacred

    monkeypatch.setattr(sacred, "SETTINGS", {k: v for k, v in SETTINGS.items() if k != "CAPTURE_MODE"})
    assert interventions.problem("sacred-capture-mode") == "sacred.SETTINGS has no CAPTURE_MODE"


def test_a_changed_pymarlzooplus_results_path_hook_is_named(monkeypatch):
    zoo_main = pytest.importorskip("pymarlzooplus.main")
    assert interventions.problem("zoo-results-path") is None
    monkeypatch.setattr(zoo_main, "get_caller_path", lambda depth: "/somewhere")
    assert interventions.problem("zoo-results-path") == (
        "pymarlzooplus.main.get_caller_path takes (depth), not ()")
    with pytest.raises(UserError, match=r"^r3dm-epymarl cannot apply 'zoo-results-path'"):
        interventions.require("zoo-results-path")


@needs_epymarl
def test_an_envs_package_the_smaclite_stand_in_cannot_satisfy_is_named(tmp_path):
    """The stand-in fills a module-level `import smaclite` only (upstream's form); a submodule import or
    a `from smaclite import X` at module level would break every env at import time."""
    from types import SimpleNamespace

    envs = tmp_path / "src" / "envs"
    envs.mkdir(parents=True)
    upstream = Path(EPYMARL_PATH) / "src" / "envs"
    for name in ("__init__.py", "smaclite_wrapper.py"):
        (envs / name).write_text((upstream / name).read_text())
    host = SimpleNamespace(name="epymarl", src=tmp_path / "src")
    assert interventions.problem("epymarl-smaclite", host) is None
    wrapper = envs / "smaclite_wrapper.py"
    wrapper.write_text(wrapper.read_text().replace("import smaclite  # noqa", "from smaclite.env import SMACliteEnv"))
    assert interventions.problem("epymarl-smaclite", host) == (
        "envs/smaclite_wrapper.py does `from smaclite.env import ...`, which the stand-in cannot provide")
    wrapper.write_text("import smaclite.env\n")
    assert interventions.problem("epymarl-smaclite", host) == (
        "envs/smaclite_wrapper.py does `import smaclite.env`, which the stand-in cannot provide")
    (envs / "__init__.py").unlink()
    assert "is gone" in interventions.problem("epymarl-smaclite", host)


def test_a_replaced_excepthook_that_cannot_be_chained_is_named(monkeypatch):
    import sys

    assert interventions.problem("excepthook") is None  # Python's own, or pytest's
    monkeypatch.setattr(sys, "excepthook", lambda value: None)
    assert interventions.problem("excepthook") == (
        "sys.excepthook (test_a_replaced_excepthook_that_cannot_be_chained_is_named.<locals>.<lambda>) does not "
        "take (type, value, traceback)")
    monkeypatch.setattr(sys, "excepthook", None)
    assert interventions.problem("excepthook") == "sys.excepthook is not callable"
