"""What the plug-in offers: every algorithm declared once, every component under a namespaced key.

`COMPONENTS[kind][key]` is "module:attr" for plug-in code, or "host:<key>" to expose one of the host's
own components under the plug-in's name. `ALGORITHMS` ties a `--config` name to its YAML, its parts
and the schema of keys its code reads; a test checks each YAML against its declaration.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from r3dm_epymarl.errors import UserError

HOST_PREFIX = "host:"

COMPONENTS: dict[str, dict[str, str]] = {
    "learners": {
        # QMIX's learner as the host ships it, reached through the plug-in's registry: the baseline
        # run on the very same runner, buffer and evaluation protocol as the plug-in's algorithms.
        "r3dm_q_learner": HOST_PREFIX + "q_learner",
        "acorm_learner": "r3dm_epymarl.learners.role_q_learner:RoleQLearner",
        "r3dm_learner": "r3dm_epymarl.learners.r3dm:R3DMLearner",
        "cds_learner": "r3dm_epymarl.learners.cds:CDSLearner",
    },
    "controllers": {
        "role_mac": "r3dm_epymarl.controllers.role_mac:RoleMAC",
        "recurrent_mac": "r3dm_epymarl.controllers.base:RecurrentMAC",
    },
    "agents": {
        "role_rnn": "r3dm_epymarl.modules.agents.role_rnn:RoleRNNAgent",
        "cds_rnn": "r3dm_epymarl.modules.agents.cds_rnn:CDSRNNAgent",
    },
    "mixers": {
        "attn_qmix": "r3dm_epymarl.modules.mixers.attn_qmix:AttentionQMixer",
    },
    "envs": {
        "smax": "r3dm_epymarl.envs.smax:smax_fn",  # SMAX (jaxmarl): SMAC-style battles without StarCraft II
    },
    "action_selectors": {
        # the host's epsilon-greedy with a choice of exploration coin (`epsilon_coin`: per agent or joint)
        "r3dm_epsilon_greedy": "r3dm_epymarl.controllers.exploration:EpsilonCoinSelector",
    },
}


@dataclass(frozen=True)
class Algorithm:
    name: str  # the --config name, the YAML file stem and the YAML's `name:`
    learner: str
    mac: str
    agent: str
    mixer: str | None
    schema: str | None = None  # "module:attr" of the Key schema its code validates, if any
    notes: str = field(default="", compare=False)

    @property
    def yaml_path(self) -> Path:
        from r3dm_epymarl.paths import config_dir

        return config_dir() / "algs" / f"{self.name}.yaml"

    def load_schema(self, config: dict | None = None) -> dict:
        """Every key this algorithm's code reads: its learner's, then those of the intrinsic terms that
        `config` configures (by default, the ones its YAML configures)."""
        if not self.schema:
            return {}
        from r3dm_epymarl.intrinsic import term_keys

        if config is None:
            import yaml

            config = yaml.safe_load(self.yaml_path.read_text()) or {}
        return {**_resolve(self.schema), **term_keys(config.get("intrinsic_terms"))}


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("r3dm_qmix", learner="r3dm_q_learner", mac="basic_mac", agent="rnn", mixer="qmix",
                  notes="host QMIX through the plug-in's registry and config dir"),
        Algorithm("acorm", learner="acorm_learner", mac="role_mac", agent="role_rnn", mixer="attn_qmix",
                  schema="r3dm_epymarl.learners.role_q_learner:RoleQLearner.schema",
                  notes="contrastive role learning + attention mixing (Hu et al., ICLR 2024)"),
        Algorithm("r3dm", learner="r3dm_learner", mac="role_mac", agent="role_rnn", mixer="attn_qmix",
                  schema="r3dm_epymarl.learners.r3dm:R3DMLearner.schema",
                  notes="ACORM + policy-diversity and world-model intrinsic rewards (ICML 2025)"),
        Algorithm("cds", learner="cds_learner", mac="recurrent_mac", agent="cds_rnn", mixer="qmix",
                  schema="r3dm_epymarl.learners.cds:CDSLearner.schema",
                  notes="CDS (Li et al., NeurIPS 2021) on the intrinsic hook, QMIX mixer"),
    )
}


class RegistrationError(UserError):
    pass


def algorithm_of(config: dict) -> Algorithm | None:
    """The plug-in algorithm whose learner `config` uses (each has its own), whatever its `name`."""
    return next((a for a in ALGORITHMS.values() if a.learner == config.get("learner")), None)


def _resolve(target: str):
    module, _, path = target.partition(":")
    obj = importlib.import_module(module)
    for attr in path.split("."):
        obj = getattr(obj, attr)
    return obj


# host name -> {(kind, key): the object registered}; makes register() idempotent per host.
_REGISTERED: dict[str, dict[tuple[str, str], object]] = {}


def register(host=None) -> Path:
    """Add every component to the host's registries (see r3dm_epymarl.register)."""
    from r3dm_epymarl.hosts import Host, get_host
    from r3dm_epymarl.paths import config_dir

    host = host if isinstance(host, Host) else get_host(host)
    done = _REGISTERED.setdefault(host.name, {})
    plan = []
    for kind, entries in COMPONENTS.items():
        registry = host.registry(kind)
        for key, target in entries.items():
            obj = done.get((kind, key))
            if obj is None:
                if target.startswith(HOST_PREFIX):
                    obj = registry_of_host(host, kind, target[len(HOST_PREFIX):])
                else:
                    obj = host.adapt(kind, _resolve(target))
            existing = registry.get(key)
            if existing is not None and existing is not obj:
                raise RegistrationError(
                    f"cannot register {kind} key '{key}': the {host.name} registry already holds "
                    f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', existing)}; "
                    "another plug-in uses the same name (uninstall one of them)")
            plan.append((registry, kind, key, obj))
    # All checks passed: only now touch the host's registries, so a refusal leaves them unchanged.
    for registry, kind, key, obj in plan:
        registry[key] = obj
        done[(kind, key)] = obj
        host.on_registered(kind, key, obj)
    return config_dir()


def registry_of_host(host, kind: str, key: str):
    registry = host.registry(kind)
    if key not in registry:
        raise RegistrationError(f"host {host.name} has no {kind} entry '{key}'")
    return registry[key]
