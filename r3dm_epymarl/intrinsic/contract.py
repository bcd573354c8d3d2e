"""What an intrinsic term reads, against what the configured controller and agent provide.

A term declares `needs`: names of what its `reward`/`update` read beyond the batch, Q and the mask:
- an unroll output, `z` (role embeddings, `ctx.z`) or a key of `ctx.extras` (`hidden`, `q_local`,
  `trajectory_hidden`);
- `agent.<method>`: a method of the controller's agent (e.g. `agent.unroll_role_swapped`);
- `args.<key>`: a config key outside the term's own `keys` (e.g. `args.hidden_dim`).
A controller declares `provides(agent_cls)`: the unroll outputs it gives with that agent class. A
mismatch (`intrinsic_terms='["cds"]'` under `--config=r3dm`) is refused in one line naming the term, the
config and what is missing, by preflight (before Sacred starts) and by the learner.
"""
from __future__ import annotations

from r3dm_epymarl.errors import ConfigError


def _component(kind: str, key: str | None):
    """The plug-in's class registered under `key`, or None for a host component (or none)."""
    from r3dm_epymarl.registry import COMPONENTS, HOST_PREFIX, _resolve

    target = COMPONENTS.get(kind, {}).get(key or "")
    if target is None or target.startswith(HOST_PREFIX):
        return None
    return _resolve(target)


def missing_needs(term_cls, config: dict) -> list[str]:
    """What `term_cls` needs that this config's controller, agent and keys do not give."""
    controller, agent = _component("controllers", config.get("mac")), _component("agents", config.get("agent"))
    provided = set(controller.provides(agent)) if controller is not None else set()
    missing = []
    for need in getattr(term_cls, "needs", ()):
        kind, _, name = need.partition(".")
        if kind == "agent":
            if agent is None or not callable(getattr(agent, name, None)):
                missing.append(f"{need} (agent {config.get('agent')} has no {name})")
        elif kind == "args":
            if name not in config:
                missing.append(f"{need} (no key '{name}' in this config)")
        elif need not in provided:
            missing.append(f"{need} (mac {config.get('mac')} with agent {config.get('agent')} provides "
                           f"{', '.join(sorted(provided)) or 'nothing'})")
    return missing


def check_terms(config: dict, entries, where: str) -> None:
    """Refuse, in one line, a configured term whose needs this config does not meet."""
    from r3dm_epymarl.intrinsic import term_class

    for entry in entries or []:
        cls = term_class(entry)
        missing = missing_needs(cls, config)
        if missing:
            raise ConfigError(f"{where}: intrinsic term '{cls.name}' needs {'; '.join(missing)}: use it under an "
                              "algorithm whose controller provides these (docs/EXTENDING.md, 'What a term reads')")
