"""`report` rows are settings, not names (issue #36 item 3, #41 item 7): runs of one name that differ
in a learning key are separate rows named by it; keys that do not change learning never split a row;
a seed repeated within a row counts once, said in one line."""
from r3dm_epymarl.experiments import report
from tests.report_runs import flat, write_run


def _build(root, tmp_path, **kwargs):
    return report.build_report([str(root)], out=str(tmp_path / "out"), reps=50, **kwargs)


def seeds_of(text: str, row: str) -> int:
    """The seeds column of `row` in the first table of the report."""
    table = text[text.index("\n== "):]
    (line,) = [line for line in table.splitlines() if line.split() and line.split()[0] == row][:1]
    return int(line.split()[1])


def test_a_sweep_gives_one_row_per_setting(tmp_path):
    root = tmp_path / "runs"
    for seed in (1, 2):
        for lr, value in ((0.001, 0.8), (0.0005, 0.2)):
            write_run(root, "r3dm", "2s3z", seed, {report.WIN_RATE: flat(value)}, folder_name=f"{lr}_{seed}",
                      config={"lr": lr, "checkpoint_path": f"/models/{seed}", "use_cuda": seed == 1,
                              "learner_log_interval": 100 * seed, "hypergroup": None})
    text, _ = _build(root, tmp_path)
    table = [line for line in text.splitlines() if line.startswith("r3dm")]
    assert table[0].startswith("r3dm[lr=0.0005]  2") and "0.200" in table[0]
    assert table[1].startswith("r3dm[lr=0.001]   2") and "0.800" in table[1]
    assert ("report: 2s3z r3dm: its runs differ in lr, so they are 2 rows, not seeds of one: r3dm[lr=0.0005], "
            "r3dm[lr=0.001]") in text


def test_search_py_hypergroups_are_rows(tmp_path):
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        for group, alpha, value in (("hyp_a", 0.1, 0.5), ("hyp_b", 0.05, 0.6)):
            write_run(root, "r3dm", "3m", seed, {report.WIN_RATE: flat(value)}, folder_name=f"{group}{seed}",
                      config={"hypergroup": group, "intrinsic_alpha": alpha, "label": f"{group}_{seed}"})
    text, _ = _build(root, tmp_path)
    assert seeds_of(text, "r3dm[hypergroup=hyp_a,intrinsic_alpha=0.1]") == 3
    assert seeds_of(text, "r3dm[hypergroup=hyp_b,intrinsic_alpha=0.05]") == 3


def test_keys_that_do_not_change_learning_or_are_new_keep_one_row(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "acorm", "3m", 1, {report.WIN_RATE: flat(0.5)}, config={"save_model": True, "lr": 0.001})
    write_run(root, "acorm", "3m", 2, {report.WIN_RATE: flat(0.7)},
              config={"save_model": False, "lr": 0.001, "wm_skip_padding": True})  # a key older runs lack
    text, _ = _build(root, tmp_path)
    assert seeds_of(text, "acorm") == 2 and "acorm[" not in text and "differ in" not in text


def test_a_repeated_seed_counts_once_and_says_which_runs_it_left_out(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "qmix", "3m", 1, {report.WIN_RATE: flat(0.5)}, folder_name="a")
    write_run(root, "qmix", "3m", 1, {report.WIN_RATE: [0.9] * 3}, folder_name="b", steps=[0, 100, 200])  # shorter
    write_run(root, "qmix", "3m", 2, {report.WIN_RATE: flat(0.3)})
    text, _ = _build(root, tmp_path)
    assert seeds_of(text, "qmix") == 2  # seeds 1 (the longer run, 0.5) and 2 (0.3): final 0.400
    assert "0.400" in text[text.index("\n== "):].splitlines()[3]
    lines = [line for line in text.splitlines() if "seed 1: 2 runs, counted once" in line]
    assert len(lines) == 1 and lines[0].startswith("report: 3m qmix seed 1: 2 runs, counted once (kept ")
    assert lines[0].endswith("/qmix/3m/b)") and "/qmix/3m/a;" in lines[0]


def test_a_diverged_run_is_never_a_seed_and_is_named(tmp_path):
    """Issue #41 item 3: a run that ended in TrainingDiverged is left out even with --status any."""
    import json

    root = tmp_path / "runs"
    write_run(root, "acorm", "3m", 1, {report.WIN_RATE: flat(0.5)})
    write_run(root, "acorm", "3m", 2, {report.WIN_RATE: flat(0.0)}, status="FAILED")
    run_json = root / "acorm" / "3m" / "2" / "run.json"
    run_json.write_text(json.dumps({"status": "FAILED", "fail_trace": [
        "r3dm_epymarl.errors.TrainingDiverged: 'loss_td' became NaN or inf at t_env=187"]}))
    write_run(root, "acorm", "3m", 3, {report.WIN_RATE: flat(0.7)}, status="FAILED")  # failed otherwise
    text, _ = _build(root, tmp_path, status="any")
    assert seeds_of(text, "acorm") == 2  # seeds 1 and 3
    assert "(1 run(s) that diverged (NaN or inf) left out: acorm 3m seed 2)" in text
    text, _ = _build(root, tmp_path)
    assert seeds_of(text, "acorm") == 1
    assert "(1 run(s) with another status left out; --status any includes them)" in text
    assert "(1 run(s) that diverged (NaN or inf) left out: acorm 3m seed 2)" in text


def test_report_names_the_protocol_keys_that_differ_between_rows(tmp_path):
    """Issue #36 item 4: keys outside each algorithm's own that differ between the rows of a map."""
    root = tmp_path / "runs"
    shared = {"epsilon_finish": 0.05, "test_nepisode": 32}
    for seed in (1, 2):
        write_run(root, "qmix", "2s3z", seed, {report.WIN_RATE: flat(0.1)},
                  config={**shared, "standardise_rewards": True, "lr": 0.0005})
        write_run(root, "cds", "2s3z", seed, {report.WIN_RATE: flat(0.2)},
                  config={**shared, "standardise_rewards": False, "lr": 0.0005, "cds_beta1": 2.0})
        write_run(root, "acorm", "2s3z", seed, {report.WIN_RATE: flat(0.3)},
                  config={**shared, "standardise_rewards": False, "epsilon_finish": 0.02, "lr": 0.0006,
                          "epsilon_coin": "joint"})
    text, _ = _build(root, tmp_path)
    (line,) = [line for line in text.splitlines() if line.startswith("protocol differences on 2s3z: ")]
    assert line == ("protocol differences on 2s3z: standardise_rewards qmix=True, others False; "
                    "epsilon_finish acorm=0.02, others 0.05; epsilon_coin acorm=joint, others unset")
    # the algorithms' own keys (lr, cds_beta1) are theirs to differ in: not listed


def test_report_names_rows_tested_on_other_episodes(tmp_path):
    """Issue #36 item 6: a row tested on its env's own episodes beside rows with static tests is said."""
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_run(root, "qmix", "2s3z", seed, {report.WIN_RATE: flat(0.1)})
        for name in ("cds", "acorm"):
            write_run(root, name, "2s3z", seed, {report.WIN_RATE: flat(0.2), "test_env_seed": flat(1000000)})
    text, _ = _build(root, tmp_path)
    (line,) = [line for line in text.splitlines() if line.startswith("protocol differences on 2s3z: ")]
    assert line == "protocol differences on 2s3z: test_env_seed qmix=off, others 1000000"
    # all alike: nothing said
    for seed in (1, 2):
        write_run(tmp_path / "same", "qmix", "2s3z", seed, {report.WIN_RATE: flat(0.1), "test_env_seed": flat(5)})
        write_run(tmp_path / "same", "cds", "2s3z", seed, {report.WIN_RATE: flat(0.2), "test_env_seed": flat(5)})
    text, _ = _build(tmp_path / "same", tmp_path)
    assert "protocol differences" not in text
