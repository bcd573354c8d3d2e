"""Intrinsic-reward terms by name; `intrinsic_terms` in an algorithm's YAML lists the ones to use."""
import importlib

from r3dm_epymarl.errors import ConfigError

TERMS = {
    "policy_kl": "r3dm_epymarl.intrinsic.policy_kl:PolicyKLReward",
    "world_model": "r3dm_epymarl.intrinsic.world_model:WorldModelReward",
    "cds": "r3dm_epymarl.intrinsic.cds:CDSReward",
}


def build_terms(args, obs_dim: int):
    """The configured terms as a ModuleDict, in config order (empty when none are configured)."""
    from torch import nn

    terms = nn.ModuleDict()
    for name in getattr(args, "intrinsic_terms", None) or []:
        if name not in TERMS:
            raise ConfigError(f"config key 'intrinsic_terms' names '{name}'; choose from {sorted(TERMS)}")
        module, _, attr = TERMS[name].partition(":")
        terms[name] = getattr(importlib.import_module(module), attr)(args, obs_dim)
    return terms
