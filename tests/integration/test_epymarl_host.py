"""Upstream EPyMARL: the patches and the launcher against a real checkout.

Set EPYMARL_PATH to a clone of github.com/uoe-agents/epymarl to run these; each test works on a copy.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r3dm_epymarl.registry import ALGORITHMS
from tests.helpers import SHORT_RUN, cli, metrics, run_ok, short_run

EPYMARL_PATH = os.environ.get("EPYMARL_PATH")
pytestmark = pytest.mark.skipif(
    not EPYMARL_PATH, reason="EPYMARL_PATH is not set (point it at a clone of github.com/uoe-agents/epymarl)")


@pytest.fixture
def checkout(tmp_path):
    dest = tmp_path / "epymarl"
    shutil.copytree(EPYMARL_PATH, dest, ignore=shutil.ignore_patterns("results", "__pycache__"))
    return dest


def _loss_values(results: Path, algorithm: str):
    (run_dir,) = [p.parent for p in results.glob(f"sacred/{algorithm}/*/*/metrics.json")]
    m = metrics(run_dir)
    return m["loss_td" if "loss_td" in m else "loss"]["values"]


def test_patch_applies_once_then_is_a_no_op(checkout):
    main_before = (checkout / "src/main.py").read_text()
    first = cli("install", str(checkout))
    run_ok(first)
    assert first.stdout.count(": applied") == 2
    main_after = (checkout / "src/main.py").read_text()
    assert main_after != main_before and "epymarl.plugins" in main_after
    again = cli("install", str(checkout))
    run_ok(again)
    assert again.stdout.count("already applied") == 2
    assert (checkout / "src/main.py").read_text() == main_after
    run_ok(cli("install", "--check", str(checkout)))


def test_patched_main_trains_a_plugin_config(checkout):
    run_ok(cli("install", str(checkout)))
    proc = subprocess.run([sys.executable, "src/main.py", "--config=r3dm_qmix", "--env-config=gymma", "with",
                           *SHORT_RUN, "seed=3"], cwd=checkout, capture_output=True, text=True, timeout=600)
    run_ok(proc)
    assert len(_loss_values(checkout / "results", "r3dm_qmix")) >= 3


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_launcher_trains_through_a_pristine_checkout(checkout, algorithm):
    proc = cli("run", "--epymarl", str(checkout), f"--config={algorithm}", "--env-config=gymma", "with",
               *short_run(algorithm), "seed=3")
    run_ok(proc)
    assert len(_loss_values(checkout / "results", algorithm)) >= 3
    assert "epymarl.plugins" not in (checkout / "src/main.py").read_text(), "the launcher changes no file"


def test_patched_main_applies_presets_and_the_command_line_wins(checkout):
    run_ok(cli("install", str(checkout)))
    code = (
        "import runpy, sys; sys.path.insert(0, 'src'); "
        "g = runpy.run_path('src/main.py', run_name='patched_main'); "
        "c = g['apply_plugin_presets']({'name': 'r3dm', 'env_args': {'map_name': 'sc2'}}, "
        "['src/main.py', 'with', 'env_args.map_name=5m_vs_6m', 'intrinsic_alpha=0.2']); "
        "print(c['r3dm_beta1'], c['wm_horizon'], c.get('intrinsic_alpha'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, timeout=300)
    run_ok(proc)
    # 5m_vs_6m's preset (beta1 2.0, k 2) applies; intrinsic_alpha was given on the command line, so the
    # preset's 0.05 is not written over it (Sacred then applies the user's 0.2).
    assert proc.stdout.split()[-3:] == ["2.0", "2", "None"]


def test_sc2v2_without_starcraft_stops_with_one_line(checkout, tmp_path):
    proc = cli("run", "--epymarl", str(checkout), "--config=r3dm", "--env-config=sc2v2", "with",
               "env_args.map_name=protoss_5_vs_5", env={"SC2PATH": str(tmp_path / "no_sc2")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "smacv2" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("case", ["sc2v2", "intrinsic_terms"])
def test_patched_main_stops_bad_input_with_one_line(checkout, tmp_path, case):
    """`python src/main.py` in a patched checkout: the same one-line errors as the launcher, before the
    host builds its env (no host ModuleNotFoundError traceback, no "Traceback" header)."""
    run_ok(cli("install", str(checkout)))
    extra = (["--env-config=sc2v2", "with", "env_args.map_name=protoss_5_vs_5"] if case == "sc2v2" else
             ["--env-config=gymma", "with", *SHORT_RUN, 'intrinsic_terms=["policy_kl","curiosity"]'])
    proc = subprocess.run([sys.executable, "src/main.py", "--config=r3dm", *extra], cwd=checkout,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SC2PATH": str(tmp_path / "no_sc2"), "PYTHONWARNINGS": "ignore"})
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "ModuleNotFoundError" not in output
    (line,) = [l for l in output.splitlines() if l.startswith("r3dm_epymarl.errors.")]
    assert ("SMACv2 (--env-config=sc2v2) cannot run" if case == "sc2v2" else "names 'curiosity'") in line


def test_mongo_and_base_dir_through_the_launcher(checkout, mongo_server, tmp_path):
    import pymongo

    proc = cli("run", "--epymarl", str(checkout), "--base-dir", str(tmp_path / "out"), "--config=r3dm_qmix",
               "--env-config=gymma", "with", *SHORT_RUN, "seed=3", f"mongo_url={mongo_server}/epymarl_host")
    run_ok(proc)
    assert len(_loss_values(tmp_path / "out" / "results", "r3dm_qmix")) >= 3
    assert not (checkout / "results" / "sacred").exists(), "--base-dir moves the Sacred runs"
    (run,) = list(pymongo.MongoClient(mongo_server)["epymarl_host"].runs.find())
    assert run["status"] == "COMPLETED" and run["config"]["name"] == "r3dm_qmix"


def test_patched_main_logs_to_mongo_from_the_env_var(checkout, mongo_server):
    import pymongo

    run_ok(cli("install", str(checkout)))
    proc = subprocess.run([sys.executable, "src/main.py", "--config=r3dm_qmix", "--env-config=gymma", "with",
                           *SHORT_RUN, "seed=3"], cwd=checkout, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MONGO_URL": f"{mongo_server}/patched_main"})
    run_ok(proc)
    (run,) = list(pymongo.MongoClient(mongo_server)["patched_main"].runs.find())
    assert run["status"] == "COMPLETED"
    names = {m["name"] for m in pymongo.MongoClient(mongo_server)["patched_main"].metrics.find()}
    assert {"test_return_mean", "loss"} <= names, names


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_each_algorithm_trains_with_the_parallel_runner(checkout, algorithm):
    """Issue #36 item 2: `runner=parallel batch_size_run=4` through the real host loop: it trains, tests,
    and the progress line counts the env steps of all four envs (t_max=800: four envs fill the buffer four
    episodes at a time, and the role algorithms' pre-training takes the first updates)."""
    proc = cli("run", "--epymarl", str(checkout), f"--config={algorithm}", "--env-config=gymma", "with",
               *short_run(algorithm), "seed=3", "runner=parallel", "batch_size_run=4", "t_max=800")
    run_ok(proc)
    losses = _loss_values(checkout / "results", algorithm)
    assert len(losses) >= 2 and all(v == v for v in losses)  # finite, logged
    (run_dir,) = [p.parent for p in (checkout / "results").glob(f"sacred/{algorithm}/*/*/metrics.json")]
    m = metrics(run_dir)
    assert m["test_return_mean"]["values"], "test phases ran"
    progress = [line for line in proc.stderr.splitlines() if line.startswith("r3dm-epymarl: t_env ")]
    last = int(progress[-1].split("t_env ")[1].split("/")[0].replace(",", ""))
    assert last >= 800 and last >= m["test_return_mean"]["steps"][-1]  # (t_max=800: a 4-env run() takes ~100)
