"""The checks made before a run spends any time: every entry path calls them (the launcher on its merged
config, the hooked host loop on the host's args for a patched `python src/main.py`)."""
from __future__ import annotations


def preflight(config: dict, host_name: str | None = None, cwd: str | None = None):
    """Check a run's config before any host code runs (no training time spent, no Sacred run left
    behind): the plug-in algorithm's keys, the host's keys its loop reads, the scenario, and
    checkpoint_path. Returns where a resume loads from (runs/resume_checks.py), or None."""
    from r3dm_epymarl.config import validate
    from r3dm_epymarl.host_keys import check_host_keys
    from r3dm_epymarl.registry import algorithm_of
    from r3dm_epymarl.runs.resume_checks import check_checkpoint_path
    from r3dm_epymarl.scenario_checks import check_scenario

    algo = algorithm_of(config)
    if algo is not None:
        validate(config, algo.load_schema(config), where=f"--config={config.get('name', algo.name)}")
    check_host_keys(config, where=f"--config={config.get('name', '?')}")
    check_exploration(config, where=f"--config={config.get('name', '?')}")
    check_reward_setup(config, where=f"--config={config.get('name', '?')}")
    if algo is not None:
        from r3dm_epymarl.intrinsic.contract import check_terms

        check_terms(config, config.get("intrinsic_terms"), where=f"--config={config.get('name', '?')}")
    check_scenario(config, host_name)
    return check_checkpoint_path(config, cwd)


def check_host_run(args, host_name: str | None = None):
    """The launcher's checks, for runs it did not start (a patched `python src/main.py`): made by the
    hooked host loop (runs/loop.py, `install_host_loop`) before the host builds its env or learner, in
    one line (no traceback) inside the host's Sacred run. Returns where a resume loads from
    (resume_checks.ResumeTarget), or None."""
    from r3dm_epymarl.errors import UserError, for_sacred

    try:
        if getattr(args, "env", None) == "sc2v2":
            from r3dm_epymarl.envs.sc2v2 import check_sc2v2

            check_sc2v2()
        return preflight(vars(args), host_name)
    except UserError as error:
        raise for_sacred(error) from None


def check_exploration(config: dict, where: str) -> None:
    """`epsilon_coin` is read by the plug-in's selector only: a wrong value, or a value with another
    selector (which would ignore it), is refused in one line."""
    from r3dm_epymarl.config import check_key
    from r3dm_epymarl.controllers.exploration import KEYS, SELECTOR
    from r3dm_epymarl.errors import ConfigError

    if "epsilon_coin" not in config:
        return
    check_key("epsilon_coin", config["epsilon_coin"], KEYS["epsilon_coin"], where)
    selector = config.get("action_selector")
    if config["epsilon_coin"] != "per_agent" and selector != SELECTOR:
        raise ConfigError(f"{where}: epsilon_coin={config['epsilon_coin']} is read by action_selector={SELECTOR} "
                          f"only, but this config uses action_selector={selector}: set action_selector={SELECTOR} "
                          "(or leave epsilon_coin=per_agent)")


def check_reward_setup(config: dict, where: str) -> None:
    """`common_reward=False` (one reward per agent: LBF, PettingZoo, VMAS) under a learner that mixes the
    agents' Qs into one Q_tot: the buffer would hold [B, T, N] rewards and the TD target would broadcast
    them against Q_tot [B, T, 1] (N copies of a wrong loss). EPyMARL refuses it for its own q_learner
    with a mixer only; the plug-in's learners are refused here, on every entry path."""
    from r3dm_epymarl.errors import ConfigError
    from r3dm_epymarl.registry import COMPONENTS

    if config.get("common_reward", True) is not False:
        return
    learner = config.get("learner")
    if learner not in COMPONENTS["learners"]:
        return
    mixer = config.get("mixer")
    if learner == "r3dm_q_learner" and mixer not in ("qmix", "vdn"):
        return  # the host's q_learner without a mixer learns per-agent Qs, as upstream allows
    raise ConfigError(f"{where}: common_reward=False gives one reward per agent, but {learner} (mixer {mixer}) "
                      "trains one Q_tot on one team reward: set common_reward=True and choose how the agents' "
                      "rewards are combined with reward_scalarisation=sum or mean")
