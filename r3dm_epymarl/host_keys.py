"""Typed checks for the host's own keys that its run loop (and the plug-in's hooks on it) reads.

Neither host checks them: `t_max=-5` trains nothing and ends COMPLETED, `batch_size=0` ends in an
IndexError, `t_max=abc` in a TypeError deep in the loop. The same `Key` checks as the plug-in's own keys
(r3dm_epymarl.config), run by the launcher before the host starts and by the hooked loop before the
host builds anything (a patched `python src/main.py`). A key the host's config lacks is not checked:
the other host (or another version) may not have it.
"""
from __future__ import annotations

from r3dm_epymarl.config import Key, check_key
from r3dm_epymarl.errors import ConfigError

# Step counts and intervals are numbers (Sacred reads t_max=2e6 as a float, which the loops accept);
# sizes and episode counts index tensors and ranges, so they are ints.
HOST_KEYS: dict[str, Key] = {
    "t_max": Key(float, "env steps of training", minimum=1),
    "batch_size": Key(int, "episodes per learner update", minimum=1),
    "batch_size_run": Key(int, "envs run in parallel", minimum=1),
    "buffer_size": Key(int, "replay capacity in episodes", minimum=1),
    "test_interval": Key(float, "env steps between test phases", minimum=1),
    "test_nepisode": Key(int, "episodes per test phase", minimum=1),
    "log_interval": Key(float, "env steps between log summaries", minimum=0),
    "runner_log_interval": Key(float, "env steps between runner stats", minimum=0),
    "learner_log_interval": Key(float, "env steps between learner stats", minimum=0),
    "save_model": Key(bool, "save checkpoints"),
    "save_model_interval": Key(float, "env steps between checkpoints (0 would save one every episode)", minimum=1),
    "checkpoint_path": Key(str, "a folder of <t_env>/ checkpoints to resume or evaluate from ('' = none)"),
    "load_step": Key(float, "the checkpoint step to load (0 = the newest)", minimum=0),
    "evaluate": Key(bool, "test the loaded checkpoint only, no training"),
    "save_replay": Key(bool, "save a replay of the loaded checkpoint"),
    "runner": Key(str, "the host's runner (episode, parallel)"),
    "local_results_path": Key(str, "where models are saved"),
    "use_cuda": Key(bool, "train on the GPU"),
    "buffer_cpu_only": Key(bool, "keep the replay buffer in CPU memory"),
}


def check_host_keys(config, where: str = "run") -> None:
    """Raise ConfigError (one line, naming the key and the fix) on the first bad host key of `config`
    (a dict or an args namespace)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    missing = object()
    for name, key in HOST_KEYS.items():
        value = get(name, missing)
        if value is not missing:
            check_key(name, value, key, where)
    batch, buffer = get("batch_size", None), get("buffer_size", None)
    if isinstance(batch, int) and isinstance(buffer, int) and batch > buffer:
        # The buffer could never hold a batch: the run would collect episodes and train nothing.
        raise ConfigError(f"{where}: config key 'batch_size' is {batch} but buffer_size is {buffer}: a batch "
                          f"is sampled from the buffer, so set batch_size <= buffer_size")
