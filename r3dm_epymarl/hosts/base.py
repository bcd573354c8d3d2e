"""The host interface every EPyMARL-family host implements (no host module is imported here)."""
from __future__ import annotations

import importlib
from pathlib import Path

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
            from r3dm_epymarl.hosts.interventions import require

            require("host-mixer-registry", self)
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
