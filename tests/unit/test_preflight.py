"""The checks every entry path runs before the host starts (launcher.preflight; the hooked loop's
select for a patched main.py): host keys, `with` words, mongo_url, the scenario, checkpoint_path."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from r3dm_epymarl.errors import ConfigError, UserError
from r3dm_epymarl.hosts.sacred import check_mongo_url
from r3dm_epymarl.host_keys import HOST_KEYS, check_host_keys
from r3dm_epymarl.launcher import check_updates, preflight
from r3dm_epymarl.runs.checkpoints import MANIFEST
from r3dm_epymarl.runs.resume_checks import check_checkpoint_path, config_changes
from r3dm_epymarl.scenario_checks import SMAX_AGENTS, check_scenario

UPSTREAM = Path(os.environ.get("EPYMARL_PATH") or "/nonexistent") / "src" / "config"
SMAX_3M = {"name": "acorm", "env": "smax", "env_args": {"map_name": "3m"}, "role_clusters": 3,
           "t_max": 300, "batch_size": 4, "buffer_size": 32, "checkpoint_path": "", "load_step": 0}


# --- the host's keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("t_max", -5, "'t_max' is -5; it must be >= 1"),
    ("t_max", 0, "'t_max' is 0; it must be >= 1"),
    ("t_max", "abc", "'t_max' must be a number, got 'abc'"),
    ("batch_size", 0, "'batch_size' is 0; it must be >= 1"),
    ("save_model_interval", 0, "'save_model_interval' is 0; it must be >= 1"),  # a checkpoint every episode
    ("batch_size", "abc", "'batch_size' must be a int, got 'abc'"),
    ("batch_size", 64, "'batch_size' is 64 but buffer_size is 32"),
    ("buffer_size", 0, "'buffer_size' is 0; it must be >= 1"),
    ("test_interval", 0, "'test_interval' is 0; it must be >= 1"),
    ("save_model", "yes", "'save_model' must be true or false"),
    ("checkpoint_path", None, "'checkpoint_path' must be a str"),
    ("load_step", -1, "'load_step' is -1; it must be >= 0"),
])
def test_bad_host_keys_are_one_line_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        check_host_keys({**SMAX_3M, key: value}, where="--config=r3dm_qmix")
    assert "\n" not in str(error.value) and str(error.value).startswith("--config=r3dm_qmix: ")


def test_preflight_checks_host_keys_for_a_host_algorithm_too():
    with pytest.raises(ConfigError, match="'t_max' is -5"):
        preflight({"name": "qmix", "learner": "q_learner", "t_max": -5})
    # Sacred reads t_max=2e6 as a float: a number of steps, accepted like an int.
    check_host_keys({"t_max": 2e6, "test_interval": 1e4, "batch_size": 32, "buffer_size": 5000})
    check_host_keys({})  # a key the host's config lacks is not required


def _host_configs(root: Path) -> list[tuple[str, dict]]:
    default = yaml.safe_load((root / "default.yaml").read_text())
    out = []
    for alg in sorted((root / "algs").glob("*.yaml")):
        config = {**default, **(yaml.safe_load(alg.read_text()) or {})}
        out.append((alg.stem, config))
    return out


def test_every_shipped_config_passes_the_host_key_checks():
    """No YAML the plug-in or a host ships is refused (the checks only catch what would break)."""
    from r3dm_epymarl.paths import config_dir

    roots = [p for p in (UPSTREAM, ) if p.is_dir()]
    try:
        from r3dm_epymarl.hosts.zoo import ZooHost

        roots.append(ZooHost().config_dir)
    except Exception:  # PyMARLzoo+ not installed
        pass
    if not roots:
        pytest.skip("no host config folder (EPYMARL_PATH or pymarlzooplus)")
    checked = 0
    for root in roots:
        default = yaml.safe_load((root / "default.yaml").read_text())
        for name, config in _host_configs(root) + [
                (p.stem, {**default, **yaml.safe_load(p.read_text())}) for p in (config_dir() / "algs").glob("*.yaml")]:
            check_host_keys(config, where=name)
            checked += 1
    assert checked >= 10
    assert set(HOST_KEYS) <= set(yaml.safe_load((roots[0] / "default.yaml").read_text()))


# --- `with` words and mongo_url ---------------------------------------------------------------------------

def test_a_bare_word_after_with_needs_key_equals_value():
    with pytest.raises(UserError, match=r"`with lr`: updates after `with` are key=value \(e.g. lr=VALUE\)"):
        check_updates(["--config=acorm", "--env-config=smax", "with", "t_max=300", "lr"])
    check_updates(["--config=acorm", "with", "lr=0.01", "env_args.map_name=3m"])
    check_updates(["--config=acorm"])


@pytest.mark.parametrize("url", ["htp:/not-a-url", "mongodb://", "mongodb://h:abc/db", "localhost:27017"])
def test_a_malformed_mongo_url_is_refused(url):
    with pytest.raises(UserError, match="is malformed"):
        check_mongo_url(url)


def test_a_well_formed_mongo_url_passes_without_contacting_anything():
    for url in (None, "", "mongodb://127.0.0.1:1/db", "mongodb://u:p@h1:1,h2:2/db?replicaSet=rs",
                "mongodb+srv://cluster.invalid/db"):  # no DNS look-up for +srv
        check_mongo_url(url)
    with pytest.raises(UserError) as error:
        check_mongo_url("mongodb://user:secret@h:abc/db")
    assert "secret" not in str(error.value)


# --- the scenario ------------------------------------------------------------------------------------------

def test_unknown_smax_map_and_too_many_clusters_are_found_before_the_host():
    with pytest.raises(ConfigError, match="'nope' is not a SMAX map"):
        check_scenario({**SMAX_3M, "env_args": {"map_name": "nope"}})
    with pytest.raises(ConfigError, match="'role_clusters' is 5 but the env has only 3 agents; set role_clusters <= 3"):
        check_scenario({**SMAX_3M, "role_clusters": 5})
    check_scenario({**SMAX_3M, "env_args": {"map_name": "8m"}, "role_clusters": 5})


def test_smax_agent_counts_match_jaxmarl():
    pytest.importorskip("jaxmarl")
    from r3dm_epymarl.envs.smax import MAP_NAMES, _import_jax

    _, _, map_name_to_scenario = _import_jax()
    assert set(SMAX_AGENTS) == set(MAP_NAMES)
    assert {m: map_name_to_scenario(m).num_allies for m in MAP_NAMES} == SMAX_AGENTS


def test_gymma_keys_are_looked_up_in_gymnasium():
    pytest.importorskip("lbforaging")
    gymma = {"name": "acorm", "env": "gymma", "role_clusters": 3}
    with pytest.raises(UserError, match=r"env_args.key 'lbforaging:Foraging-9x9-nope-v3': gymnasium has no such env"):
        check_scenario({**gymma, "env_args": {"key": "lbforaging:Foraging-9x9-nope-v3"}})
    with pytest.raises(UserError, match="cannot import 'no_such_module'"):
        check_scenario({**gymma, "env_args": {"key": "no_such_module:Env-v0"}})
    with pytest.raises(ConfigError, match="'role_clusters' is 3 but the env has only 2 agents"):
        check_scenario({**gymma, "env_args": {"key": "lbforaging:Foraging-8x8-2p-3f-v3"}})
    check_scenario({**gymma, "env_args": {"key": "lbforaging:Foraging-8x8-3p-3f-v3"}})
    # Ids a host registers itself (no module part), and PyMARLzoo+'s bundled envs, are left to the host.
    check_scenario({**gymma, "env_args": {"key": "pz-mpe-simple-spread-v3"}})
    check_scenario({**gymma, "env_args": {"key": "mpe:SimpleSpread-3-v0"}}, host_name="pymarlzooplus")


# --- checkpoint_path -------------------------------------------------------------------------------------------

def _checkpoint(folder: Path, algorithm="acorm", map_="3m", config=None) -> Path:
    folder.mkdir(parents=True)
    (folder / "agent.th").write_bytes(b"\x80\x02placeholder")  # checked by its header only
    (folder / MANIFEST).write_text(json.dumps({"t_env": int(folder.name), "algorithm": algorithm, "map": map_,
                                               "config": config or {}}))
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("file", "is a file"),
    ("empty", "holds no <t_env>/ checkpoint folders"),
    ("junk", "100/agent.th is not a saved torch model"),
    ("no_models", "holds no saved models"),
])
def test_a_checkpoint_path_the_host_cannot_load_is_one_line(tmp_path, case, message):
    path = tmp_path / "ckpt"
    if case == "file":
        path.write_text("x")
    elif case == "empty":
        path.mkdir()
    elif case in ("junk", "no_models"):
        (path / "100").mkdir(parents=True)
        (path / "100" / ("agent.th" if case == "junk" else "notes.txt")).write_text("not a model")
    with pytest.raises(UserError, match=message) as error:
        check_checkpoint_path({**SMAX_3M, "checkpoint_path": str(path)})
    assert "\n" not in str(error.value) and "results/models/<run>/" in str(error.value)


def test_a_relative_checkpoint_path_is_read_from_the_hosts_folder(tmp_path):
    _checkpoint(tmp_path / "runs" / "models" / "200")
    target = check_checkpoint_path({**SMAX_3M, "checkpoint_path": "models"}, cwd=str(tmp_path / "runs"))
    assert target.models == tmp_path / "runs" / "models" and target.load_step is None
    with pytest.raises(UserError, match=f"looked in {tmp_path / 'models'}"):
        check_checkpoint_path({**SMAX_3M, "checkpoint_path": "models"}, cwd=str(tmp_path))


def test_one_step_folder_means_resume_from_that_step(tmp_path):
    models = tmp_path / "models"
    for step in (100, 200, 300):
        _checkpoint(models / str(step))
    target = check_checkpoint_path({**SMAX_3M, "checkpoint_path": str(models / "200")})
    assert (target.models, target.load_step, target.manifest["t_env"]) == (models, 200, 200)
    assert check_checkpoint_path({**SMAX_3M, "checkpoint_path": str(models)}).manifest["t_env"] == 300
    assert check_checkpoint_path({**SMAX_3M, "checkpoint_path": str(models), "load_step": 120}).manifest["t_env"] == 100
    with pytest.raises(UserError, match="is the checkpoint at step 200 but load_step=300"):
        check_checkpoint_path({**SMAX_3M, "checkpoint_path": str(models / "200"), "load_step": 300})


@pytest.mark.parametrize("config, message", [
    ({"name": "r3dm_qmix"}, "a checkpoint of --config=acorm (on 3m), not of this run's --config=r3dm_qmix"),
    ({"name": "r3dm"}, "a checkpoint of --config=acorm (on 3m), not of this run's --config=r3dm"),
    ({"env_args": {"map_name": "8m"}}, "a checkpoint of acorm on map 3m, not on this run's map 8m"),
])
def test_a_checkpoint_of_another_algorithm_or_map_is_refused_naming_both(tmp_path, config, message):
    _checkpoint(tmp_path / "models" / "400")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_checkpoint_path({**SMAX_3M, **config, "checkpoint_path": str(tmp_path / "models")})


def test_config_changes_name_the_training_keys_that_differ():
    saved = {"batch_size": 4, "lr": 0.0005, "role_clusters": 3, "t_max": 1200, "checkpoint_path": "",
             "env_args": {"map_name": "3m", "seed": 5}, "mixer_layers": (1, 2), "n_agents": 3}
    current = {**saved, "batch_size": 8, "role_clusters": 2, "lr": 0.01, "t_max": 5000, "checkpoint_path": "/x",
               "mixer_layers": [1, 2], "env_args": {"map_name": "3m", "seed": 6}}
    del current["n_agents"]  # set by the host later in the run
    assert config_changes(saved, current) == {"batch_size": (4, 8), "lr": (0.0005, 0.01), "role_clusters": (3, 2),
                                              "env_args.seed": (5, 6)}
    assert config_changes(saved, {**saved, "t_max": 9}) == {}


# --- the patched main.py path: the hooked loop's first statement --------------------------------------------

def test_the_hooked_loop_refuses_before_the_host_builds_anything(tmp_path):
    from r3dm_epymarl.preflight import check_host_run
    from r3dm_epymarl.runs.loop import RunHooks

    hooks = RunHooks("epymarl", check_host_run)
    with pytest.raises(UserError, match="'t_max' is -5") as error:
        hooks.select(SimpleNamespace(**{**SMAX_3M, "t_max": -5}))
    assert error.value.print_traceback is False  # shaped for Sacred: one line
    with pytest.raises(UserError, match="no such folder"):
        hooks.select(SimpleNamespace(**{**SMAX_3M, "checkpoint_path": str(tmp_path / "nothing")}))
    # The step-folder form is handed to the host as its folder and step.
    _checkpoint(tmp_path / "models" / "100")
    args = SimpleNamespace(**{**SMAX_3M, "checkpoint_path": str(tmp_path / "models" / "100"), "evaluate": True})
    hooks.select(args)
    assert (args.checkpoint_path, args.load_step) == (str(tmp_path / "models"), 100)


def test_individual_rewards_are_refused_where_the_learner_mixes_only():
    from r3dm_epymarl.preflight import check_reward_setup

    for learner, mixer in (("acorm_learner", "attn_qmix"), ("r3dm_learner", "attn_qmix"), ("cds_learner", "qmix"),
                           ("r3dm_q_learner", "qmix"), ("r3dm_q_learner", "vdn")):
        with pytest.raises(ConfigError, match="set common_reward=True and choose how the agents' rewards are "
                                              "combined with reward_scalarisation=sum or mean"):
            check_reward_setup({"learner": learner, "mixer": mixer, "common_reward": False}, "run")
        check_reward_setup({"learner": learner, "mixer": mixer, "common_reward": True}, "run")
    check_reward_setup({"learner": "r3dm_q_learner", "mixer": None, "common_reward": False}, "run")  # IQL: fine
    check_reward_setup({"learner": "q_learner", "mixer": "qmix", "common_reward": False}, "run")  # the host's own check


def test_a_world_model_horizon_past_the_longest_episode_is_refused():
    base = {**SMAX_3M, "intrinsic_terms": ["policy_kl", "world_model"]}
    with pytest.raises(ConfigError, match="'wm_horizon' is 70 but an episode of this env lasts at most 60 steps; "
                                          "set wm_horizon <= 60"):
        check_scenario({**base, "wm_horizon": 70})
    with pytest.raises(ConfigError, match="at most 25 steps"):
        check_scenario({**base, "wm_horizon": 30, "env_args": {"map_name": "3m", "time_limit": 25}})
    check_scenario({**base, "wm_horizon": 60})
    check_scenario({**base, "wm_horizon": 70, "intrinsic_terms": ["policy_kl"]})  # no world model, no horizon


def test_resuming_an_older_step_never_overwrites_the_runs_newer_checkpoints(tmp_path):
    """Issue #41 item 5: a resumed run saves beside the checkpoint it resumed; with save_model=True an
    older step would overwrite the newer intact ones: refused in one line naming them."""
    from r3dm_epymarl.runs.checkpoints import write_manifest

    models = tmp_path / "models"
    for step in (1524, 2004, 2500):
        folder = models / str(step)
        folder.mkdir(parents=True)
        (folder / "agent.th").write_bytes(b"\x80\x02placeholder")
        write_manifest(folder, {"t_env": step, "algorithm": "acorm", "map": "3m", "config": {}})
    (models / "2500" / "agent.th").write_bytes(b"\x80\x02changed")  # corrupt: not counted, not kept
    saving = {**SMAX_3M, "checkpoint_path": str(models / "1524"), "save_model": True}
    with pytest.raises(UserError, match=r"resuming from step 1524 with save_model=True would overwrite this run's "
                                        r"newer checkpoint\(s\) 2004 in .*models: resume from the newest"):
        check_checkpoint_path(saving)
    with pytest.raises(UserError, match="newer checkpoint"):
        check_checkpoint_path({**saving, "checkpoint_path": str(models), "load_step": 1500})
    check_checkpoint_path({**saving, "save_model": False})  # nothing is written: fine
    check_checkpoint_path({**saving, "checkpoint_path": str(models / "2004")})  # the newest intact one
    check_checkpoint_path({**saving, "checkpoint_path": str(models)})  # the newest (the host's rule)
