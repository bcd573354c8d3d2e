"""`compare` options it would ignore or misread, and an --out it cannot write: one line, exit 2, before
any cell starts or folder is made (issue 28, items 7 and 8). --dry-run keeps a regression from training."""
from __future__ import annotations

import pytest

from r3dm_epymarl.cli import main

GRID = ["compare", "--algorithms", "qmix", "--maps", "3m", "--seeds", "1", "--dry-run"]


def _refused(capsys, argv, *fragments) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("r3dm-epymarl: error: "), captured.err
    assert "python -m r3dm_epymarl" not in captured.out, "no cell command was printed"
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("options, fragments", [
    (["--ray-address", "10.0.0.1:6379"], ["--ray-address 10.0.0.1:6379 is for --backend ray", "add --backend ray"]),
    (["--backend", "local", "--ray-address", "auto"], ["--ray-address auto is for --backend ray", "local backend"]),
    (["--checkpoint-interval", "-100"], ["--checkpoint-interval -100", "or 0 for none"]),
    # a dead cluster address: Ray retried it for minutes and ignored SIGTERM (issue #41 item 2)
    (["--backend", "ray", "--ray-address", "127.0.0.1:1"], ["--ray-address 127.0.0.1:1: nothing answers there",
                                                           "start the cluster"]),
    (["--backend", "ray", "--ray-address", "headnode"], ["--ray-address headnode: give HOST:PORT"]),
])
def test_options_that_would_be_ignored_or_misread_are_refused(options, fragments, capsys, zoo_available, tmp_path):
    _refused(capsys, [*GRID, "--host", "pymarlzooplus", "--out", str(tmp_path / "grid"), *options], *fragments)
    assert not (tmp_path / "grid").exists()


def test_an_epymarl_checkout_for_the_pymarlzooplus_host_is_refused_on_every_entry_path(capsys, zoo_available,
                                                                                       tmp_path):
    fragments = ["--host pymarlzooplus with --epymarl", "drop --epymarl, or use --host epymarl"]
    _refused(capsys, [*GRID, "--host", "pymarlzooplus", "--epymarl", str(tmp_path), "--out", str(tmp_path / "grid")],
             *fragments)
    assert not (tmp_path / "grid").exists()
    _refused(capsys, ["run", "--host", "pymarlzooplus", "--epymarl", str(tmp_path), "--config=qmix",
                      "--env-config=nowhere"], *fragments)  # nowhere: a regression stops there, untrained


def test_sc2v2_without_an_epymarl_checkout_gives_runs_line(capsys, zoo_available, monkeypatch, tmp_path):
    monkeypatch.delenv("EPYMARL_PATH", raising=False)
    line = _refused(capsys, [*GRID, "--env-config", "sc2v2", "--out", str(tmp_path / "grid")],
                    "--env-config=sc2v2 (SMACv2) runs on the EPyMARL host only", "--epymarl PATH", "smax")
    assert main(["run", "--config=qmix", "--env-config=sc2v2"]) == 2
    assert capsys.readouterr().err.strip() == line, "the same line as `run`"


@pytest.mark.parametrize("where", ["out under a file", "out is a file", "its report folder is a file"])
def test_an_out_folder_that_cannot_be_made_is_refused_before_any_cell(where, capsys, zoo_available, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = {"out under a file": blocker / "grid", "out is a file": blocker,
           "its report folder is a file": tmp_path}[where]
    if where == "its report folder is a file":
        blocker.rename(tmp_path / "report")  # OUT/report, where the report goes after the cells
    fragment = {"out under a file": f"{blocker} is a file, not a folder",
                "out is a file": f"--out {blocker}: that is a file",
                "its report folder is a file": f"--out {tmp_path / 'report'}: that is a file"}[where]
    _refused(capsys, [*GRID, "--host", "pymarlzooplus", "--out", str(out)], fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker" if where != "its report folder is a file"
                                                          else "report"]


def test_good_options_still_give_the_cells(capsys, zoo_available, tmp_path):
    assert main([*GRID, "--host", "pymarlzooplus", "--checkpoint-interval", "0", "--out", str(tmp_path / "grid")]) == 0
    (command,) = capsys.readouterr().out.strip().splitlines()
    assert "--config=qmix --env-config=smax with env_args.map_name=3m seed=1" in command
    assert "save_model" not in command, "interval 0: no checkpoints"


def test_a_grid_gives_every_row_the_same_protocol_and_says_so(capsys, zoo_available, tmp_path):
    """Issues #36 item 4 and #37 item 6: QMIX keeps the host's reward standardisation and explores with a
    per-agent coin over 50k steps, ACORM / R3DM with no standardisation and one coin per env over 80k;
    a grid gives every row the role algorithms' published protocol, prints it, and leaves a key given in
    --with, or set by a published per-map preset, as it is."""
    protocol = ["standardise_rewards=False", "epsilon_start=1.0", "epsilon_finish=0.02", "epsilon_anneal_time=80000",
                "epsilon_coin=joint"]
    argv = ["compare", "--algorithms", "r3dm_qmix", "cds", "acorm", "--maps", "3m", "--seeds", "1", "--dry-run",
            "--host", "pymarlzooplus", "--out", str(tmp_path / "grid")]
    assert main(argv) == 0
    captured = capsys.readouterr()  # --dry-run: the commands on stdout, what compare says on stderr
    out, said = captured.out.splitlines(), captured.err.splitlines()
    assert said[0] == ("compare: every row uses " + " ".join(protocol) + " (the role algorithms' published protocol; "
                      "a key given in --with is used as given)")
    cells = [line for line in out if "python -m r3dm_epymarl" in line]
    assert len(cells) == 3 and all(line.count(key) == 1 for line in cells for key in protocol)
    # issue #36 item 6: every cell is tested on the same episodes, said in one line
    assert ("compare: static tests: the j-th test episode of every test phase of every cell starts from env "
            "seed 1000000+j (SMAX; elsewhere a run says it cannot; --no-static-tests to turn off)") in said
    assert all("R3DM_EPYMARL_TEST_SEED=1000000 python -m r3dm_epymarl" in line for line in cells)
    assert main([*argv[:-2], "--out", str(tmp_path / "g0"), "--no-static-tests"]) == 0
    captured = capsys.readouterr()
    assert "compare: --no-static-tests: each run is tested on its env's own stream of episodes" in captured.err
    assert "R3DM_EPYMARL_TEST_SEED" not in captured.out
    assert main([*argv[:-2], "--out", str(tmp_path / "g2"), "--with", "epsilon_coin=per_agent"]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert "compare: as given in --with for every row: epsilon_coin=per_agent" in captured.err.splitlines()
    assert all(line.count("epsilon_coin=") == 1 and "epsilon_coin=per_agent" in line
               for line in out if "python -m r3dm_epymarl" in line)
    # a published per-map preset keeps its own schedule (CDS anneals over 500k on 6h_vs_8z)
    assert main([*argv[:4], "--maps", "6h_vs_8z", *argv[7:]]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "compare: published per-map presets keep their own cds 6h_vs_8z epsilon_anneal_time=500000" in captured.err
    (cds,) = [line for line in out.splitlines() if "--config=cds " in line]
    assert "epsilon_anneal_time" not in cds and "epsilon_finish=0.02" in cds
    # a host config cannot take epsilon_coin: said in one line; it gets the rest
    assert main([*argv[:2], "qmix", "acorm", *argv[4:]]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "qmix is a host config without epsilon_coin: one coin per agent there" in captured.err
    assert all(line.startswith("cd ") for line in out.splitlines())
    (qmix,) = [line for line in out.splitlines() if "--config=qmix " in line]
    assert "epsilon_coin" not in qmix and "standardise_rewards=False" in qmix
    # a policy-gradient config has no epsilon-greedy: it keeps its own exploration, said in one line
    assert main([*argv[:2], "mappo", "acorm", *argv[5:]]) == 0
    captured = capsys.readouterr()
    assert ("compare: mappo's config has no epsilon_start, epsilon_finish, epsilon_anneal_time: it keeps its own"
            in captured.err) and "mappo is a host config without epsilon_coin" not in captured.err
    (mappo,) = [line for line in captured.out.splitlines() if "--config=mappo " in line]
    assert "epsilon" not in mappo
    # one algorithm: its own config, nothing added
    assert main([*argv[:2], "acorm", *argv[5:]]) == 0
    assert "every row uses" not in str(capsys.readouterr())


def test_repeated_cells_run_once_with_one_line(capsys, zoo_available, tmp_path):
    """Issue #41 item 7: `--seeds 1 1` (or anything given twice) trains each cell once."""
    argv = ["compare", "--algorithms", "acorm", "acorm", "--maps", "3m", "3m", "--seeds", "1", "1", "2", "--dry-run",
            "--host", "pymarlzooplus", "--out", str(tmp_path / "grid")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert captured.err.splitlines()[:3] == ["compare: --algorithms lists acorm more than once: each cell runs once",
                       "compare: --maps lists 3m more than once: each cell runs once",
                       "compare: --seeds lists 1 more than once: each cell runs once"]
    cells = [line for line in out if "python -m r3dm_epymarl" in line]
    assert len(cells) == 2 and sum("seed=1 " in c for c in cells) == 1 and sum("seed=2 " in c for c in cells) == 1


def test_an_out_folder_that_passes_the_permission_check_but_cannot_be_made_is_one_line(capsys, zoo_available):
    """Issue #41 item 8: as root, /proc is 'writable' to os.access, yet nothing can be created in it."""
    import os

    if not os.access("/proc", os.W_OK):
        pytest.skip("/proc is not writable to os.access here (not root): the permission check refuses it")
    _refused(capsys, ["compare", "--algorithms", "r3dm_qmix", "--maps", "3m", "--seeds", "1", "--host",
                      "pymarlzooplus", "--out", "/proc/r3dm-x", "--t-max", "100"],
             "--out /proc/r3dm-x: cannot create it", "give a folder you can write to")
