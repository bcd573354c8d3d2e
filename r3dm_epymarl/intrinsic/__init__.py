"""Intrinsic-reward terms by name; `intrinsic_terms` in an algorithm's YAML lists the ones to use.

An entry is a name below or the import path of a term class of your own, "package.module:Class"
(docs/EXTENDING.md). Each term class declares the config keys it reads (`keys`); the learner checks
them with its own keys before anything is built.
"""
import importlib

from r3dm_epymarl.errors import ConfigError

TERMS = {
    "policy_kl": "r3dm_epymarl.intrinsic.policy_kl:PolicyKLReward",
    "world_model": "r3dm_epymarl.intrinsic.world_model:WorldModelReward",
    "cds": "r3dm_epymarl.intrinsic.cds:CDSReward",
}


def term_class(entry: str):
    """The IntrinsicTerm subclass an `intrinsic_terms` entry names (a TERMS name or "module:Class")."""
    from r3dm_epymarl.intrinsic.base import IntrinsicTerm

    if not isinstance(entry, str) or (entry not in TERMS and ":" not in entry):
        raise ConfigError(f"config key 'intrinsic_terms' names {entry!r}; choose from {sorted(TERMS)} "
                          "or give a term class of your own as 'package.module:Class'")
    module, _, attr = TERMS.get(entry, entry).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"config key 'intrinsic_terms' names {entry!r}, which cannot be imported ({error}); "
                          "check the path and that its package is importable (PYTHONPATH)") from None
    if not (isinstance(cls, type) and issubclass(cls, IntrinsicTerm)) or not cls.name:
        raise ConfigError(f"config key 'intrinsic_terms' names {entry!r}, which is not an IntrinsicTerm "
                          "subclass with a `name`")
    return cls


def term_keys(entries) -> dict:
    """name -> Key of every key the terms `entries` declare (a key two terms share is declared once)."""
    if entries is not None and not isinstance(entries, (list, tuple)):
        raise ConfigError(f"config key 'intrinsic_terms' must be a list, got {entries!r}; "
                          "e.g. intrinsic_terms='[\"policy_kl\"]' after `with`")
    keys = {}
    for entry in entries or []:
        for name, key in term_class(entry).keys.items():
            if keys.setdefault(name, key) is not key:
                raise ConfigError(f"intrinsic terms {list(entries)} declare config key '{name}' twice, differently; "
                                  "share one Key object between them")
    return keys


def build_terms(entries, args, obs_dim: int):
    """The terms `entries` names as a ModuleDict, in config order (empty for none)."""
    from torch import nn

    terms = nn.ModuleDict()
    for entry in entries or []:
        cls = term_class(entry)
        terms[cls.name] = cls(args, obs_dim)
    return terms
