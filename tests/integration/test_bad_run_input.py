"""Bad run input on every entry path (`run` on both hosts, `demo`, `compare`, a patched `python
src/main.py`): one line, a non-zero exit, and for the launcher no Sacred run left behind (the host never
started, so nothing is printed before the line)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import LBF_KEY, cli, run_ok

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = pytest.mark.filterwarnings("ignore")
SMAX = ["--config=acorm", "--env-config=smax", "with", "env_args.map_name=3m", "t_max=300", "use_cuda=False"]


def _one_line(proc, *fragments: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r3dm-epymarl: error: "), lines[-20:]
    assert proc.stdout.strip() == "", proc.stdout[-2000:]  # no config dump, no host output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("extra, fragments", [
    (["t_max=-5"], ["'t_max' is -5; it must be >= 1"]),
    (["t_max=abc"], ["'t_max' must be a number, got 'abc'"]),
    (["batch_size=0"], ["'batch_size' is 0; it must be >= 1"]),
    (["env_args.map_name=nope"], ["'nope' is not a SMAX map"]),
    (["role_clusters=5"], ["'role_clusters' is 5 but the env has only 3 agents"]),
    (["lr"], ["`with lr`: updates after `with` are key=value"]),
    (["mongo_url=htp:/not-a-url"], ["mongo_url htp:/not-a-url is malformed"]),
    (["foo_bar_baz=1"], ["unknown config key 'foo_bar_baz'"]),  # Sacred's ConfigAddedError after its dump before
    (["lrr=0.001"], ["unknown config key 'lrr'", "did you mean 'lr'?"]),
])
@pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)")
def test_run_on_epymarl_refuses_before_the_host_starts(tmp_path, extra, fragments):
    pytest.importorskip("jaxmarl")
    _one_line(cli("run", "--epymarl", EPYMARL_PATH, "--base-dir", str(tmp_path), *SMAX, *extra), *fragments)
    assert not (tmp_path / "results").exists(), "no Sacred run, no models"


@pytest.mark.parametrize("extra, fragments", [
    (["batch_size=abc"], ["--config=r3dm_qmix: config key 'batch_size' must be a int, got 'abc'"]),
    (["env_args.key=lbforaging:Foraging-9x9-nope-v3"], ["gymnasium has no such env"]),
    (["foo_bar_baz=1"], ["unknown config key 'foo_bar_baz'"]),
])
def test_run_on_pymarlzooplus_refuses_before_the_host_starts(zoo_available, tmp_path, extra, fragments):
    pytest.importorskip("lbforaging")
    _one_line(cli("run", "--host", "pymarlzooplus", "--base-dir", str(tmp_path), "--config=r3dm_qmix",
                  "--env-config=gymma", "with", f"env_args.key={LBF_KEY}", "t_max=300", *extra), *fragments)
    assert not (tmp_path / "results").exists()


PLUGIN_ALGORITHMS = sorted(__import__("r3dm_epymarl.registry", fromlist=["ALGORITHMS"]).ALGORITHMS)


@pytest.mark.parametrize("algorithm", PLUGIN_ALGORITHMS)
@pytest.mark.parametrize("host", ["epymarl", "pymarlzooplus"])
def test_individual_rewards_are_refused_for_every_learner_that_mixes(request, tmp_path, host, algorithm):
    """LBF with one reward per agent (common_reward=False): every plug-in learner mixes into one Q_tot,
    so the run is refused in one line naming common_reward=True and reward_scalarisation (issue #36)."""
    pytest.importorskip("lbforaging")
    if host == "epymarl" and not EPYMARL_PATH:
        pytest.skip("EPYMARL_PATH is not set (an EPyMARL checkout)")
    if host == "pymarlzooplus":
        request.getfixturevalue("zoo_available")
    where = ["--epymarl", EPYMARL_PATH] if host == "epymarl" else ["--host", host]
    _one_line(cli("run", *where, "--base-dir", str(tmp_path), f"--config={algorithm}", "--env-config=gymma",
                  "with", f"env_args.key={LBF_KEY}", "t_max=300", "common_reward=False"),
              f"--config={algorithm}: common_reward=False gives one reward per agent",
              "set common_reward=True", "reward_scalarisation=sum or mean")
    assert not (tmp_path / "results").exists(), "no Sacred run, no models"


def test_demo_and_compare_refuse_a_non_positive_budget(zoo_available, tmp_path):
    _one_line(cli("demo", "--t-max", "-1", "--base-dir", str(tmp_path)), "--t-max -1")
    _one_line(cli("compare", "--host", "pymarlzooplus", "--algorithms", "r3dm_qmix", "--maps", "3m", "--seeds", "1",
                  "--t-max", "-5", "--out", str(tmp_path / "grid")), "--t-max -5")
    assert not any(tmp_path.rglob("run.json"))


@pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)")
@pytest.mark.parametrize("extra, fragment", [
    (["t_max=-5"], "'t_max' is -5; it must be >= 1"),
    (["checkpoint_path=/nonexistent/models"], "checkpoint_path /nonexistent/models: no such folder"),
    (["common_reward=False"], "common_reward=False gives one reward per agent, but r3dm_q_learner (mixer qmix)"),
])
def test_patched_main_refuses_with_one_line(tmp_path, extra, fragment):
    """`python src/main.py` in a patched checkout: the hooked loop's first statement refuses, before the
    host builds its env, as one line (Sacred has started its run by then: it ends FAILED, not COMPLETED)."""
    checkout = tmp_path / "epymarl"
    shutil.copytree(EPYMARL_PATH, checkout, ignore=shutil.ignore_patterns("results", "__pycache__"))
    run_ok(cli("install", str(checkout)))
    proc = subprocess.run([sys.executable, "src/main.py", "--config=r3dm_qmix", "--env-config=gymma", "with",
                           f"env_args.key={LBF_KEY}", "env_args.time_limit=25", "use_cuda=False", *extra],
                          cwd=checkout, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in output
    (line,) = [l for l in output.splitlines() if l.startswith("r3dm_epymarl.errors.")]
    assert fragment in line
    assert "Beginning training" not in output
    (run_json,) = Path(checkout, "results").glob("sacred/*/*/*/run.json")
    assert '"status": "FAILED"' in run_json.read_text()


@pytest.mark.skipif(not EPYMARL_PATH, reason="EPYMARL_PATH is not set (an EPyMARL checkout)")
def test_install_on_a_read_only_checkout_passes_gits_reason_on(tmp_path):
    """Issue #41: `install` said "git apply ... failed" without why; a read-only bind mount (root only)."""
    checkout, mounted = tmp_path / "epymarl", tmp_path / "ro"
    shutil.copytree(EPYMARL_PATH, checkout, ignore=shutil.ignore_patterns("results", "__pycache__"))
    mounted.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    mount = subprocess.run(["mount", "--bind", str(checkout), str(mounted)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mount.stderr.strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        _one_line(cli("install", str(mounted)), "git apply 0001-", f"failed in {mounted}: ", "Read-only file system")
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True)
