"""The checks made before a run spends any time: every entry path calls them (the launcher on its merged
config, the hooked host loop on the host's args for a patched `python src/main.py`)."""
from __future__ import annotations


def preflight(config: dict) -> None:
    """Validate a plug-in algorithm's keys before any host code runs (no training time spent)."""
    from r3dm_epymarl.config import validate
    from r3dm_epymarl.registry import algorithm_of

    algo = algorithm_of(config)
    if algo is not None:
        validate(config, algo.load_schema(config), where=f"--config={config.get('name', algo.name)}")
