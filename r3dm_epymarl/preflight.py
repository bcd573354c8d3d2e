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
    check_scenario(config, host_name)
    return check_checkpoint_path(config, cwd)
