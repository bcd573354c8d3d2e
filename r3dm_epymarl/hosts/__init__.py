"""Hosts: THE ONLY place that imports host modules (upstream EPyMARL or PyMARLzoo+).

A `Host` hides where the host's modules live (top-level names in an EPyMARL checkout's `src/`, or the
`pymarlzooplus` package) and the few interface differences between the two (`adapt`).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from r3dm_epymarl.errors import UserError

EPYMARL = "epymarl"
ZOO = "pymarlzooplus"
HOST_NAMES = (EPYMARL, ZOO)

# Registries every EPyMARL-family host has, by the module that holds each one.
REGISTRY_MODULES = {
    "learners": "learners",
    "controllers": "controllers",
    "agents": "modules.agents",
    "mixers": "modules.mixers",  # created by the plug-in: neither host has a mixer registry
    "envs": "envs",
    "action_selectors": "components.action_selectors",
}


class Host:
    """One host framework: module lookup, registries, interface adapters, config dir, launcher."""

    name: str = ""
    prefix: str = ""  # prepended to a host module's relative name

    def module(self, relative: str):
        return importlib.import_module(self.prefix + relative)

    @property
    def config_dir(self) -> Path:
        """The host's own config folder (default.yaml, algs/, envs/)."""
        raise NotImplementedError

    def registry(self, kind: str) -> dict:
        module = self.module(REGISTRY_MODULES[kind])
        if kind == "mixers" and not hasattr(module, "REGISTRY"):
            module.REGISTRY = self._host_mixers()
        return module.REGISTRY

    def _host_mixers(self) -> dict:
        # The mixers both hosts ship, under the names their `mixer:` key already uses.
        return {
            "vdn": self.module("modules.mixers.vdn").VDNMixer,
            "qmix": self.module("modules.mixers.qmix").QMixer,
        }

    def adapt(self, kind: str, obj):
        """Bind a plug-in class to this host. Classes that declare `_host_registry` look other
        components up by key (agents, mixers, action selectors) in this host's registries."""
        if isinstance(obj, type) and hasattr(obj, "_host_registry"):
            obj = type(obj.__name__, (obj,), {"_host_registry": staticmethod(self.registry),
                                             "__module__": obj.__module__, "__qualname__": obj.__qualname__})
        return obj

    def on_registered(self, kind: str, key: str, obj) -> None:
        """Called by `registry.register` after it put `obj` under `key` in this host's `kind` registry
        (the hosts learn the plug-in's keys from it, never by importing the registry)."""

    def run(self, argv: list[str], base_dir: str | None = None) -> None:
        raise NotImplementedError


def get_host(name: str | None = None, epymarl_path: str | None = None) -> Host:
    """The host by name, or detected: an EPyMARL `src/` already importable, then PyMARLzoo+."""
    from r3dm_epymarl.hosts.epymarl import EPyMARLHost, find_imported_checkout
    from r3dm_epymarl.hosts.zoo import ZooHost

    if name not in (None, *HOST_NAMES):
        raise UserError(f"unknown host '{name}': use one of {', '.join(HOST_NAMES)}")
    if name == ZOO and epymarl_path:  # it would be ignored: say so rather than run another host than meant
        raise UserError(f"--host {ZOO} with --epymarl {epymarl_path}: --epymarl is an EPyMARL checkout, which "
                        f"{ZOO} does not use: drop --epymarl, or use --host {EPYMARL}")
    checkout = epymarl_path or find_imported_checkout() or os.environ.get("EPYMARL_PATH")
    if name == EPYMARL or (name is None and checkout):
        return EPyMARLHost(checkout)
    if name == ZOO or importlib.util.find_spec("pymarlzooplus") is not None:
        if importlib.util.find_spec("pymarlzooplus") is None:
            raise UserError("host pymarlzooplus is not installed: pip install --no-deps pymarlzooplus==1.1.0 "
                            "(see README), or pass --epymarl PATH to use an EPyMARL checkout")
        return ZooHost()
    raise UserError("no host found: pass --epymarl PATH (or set EPYMARL_PATH) to an EPyMARL checkout, "
                    "or pip install --no-deps pymarlzooplus==1.1.0 (see README)")
