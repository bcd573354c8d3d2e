"""PyMARLzoo+ (PyPI `pymarlzooplus`): its registries plus the small adapter for its interface.

Differences bridged here (../shared/HOSTS.md): `mac.select_actions` returns `(actions, extras)`;
Sacred results go next to the calling script, so the launcher points them at a results dir.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from r3dm_epymarl.hosts import ZOO, Host


class ZooHost(Host):
    name = ZOO
    prefix = "pymarlzooplus."

    @property
    def config_dir(self) -> Path:
        # Found without importing the package (which would pull in sacred, torch and the envs).
        spec = importlib.util.find_spec("pymarlzooplus")
        return Path(next(iter(spec.submodule_search_locations))).resolve() / "config"

    def adapt(self, kind, obj):
        obj = super().adapt(kind, obj)
        return _returns_extras(obj) if kind == "controllers" else obj

    def run(self, argv, base_dir=None):
        import pymarlzooplus.main as zoo_main

        # PyMARLzoo+ writes results/ beside the outermost script (for `python -m` that is runpy's
        # frozen module path); send them where the user asked, the current directory by default.
        root = os.path.abspath(base_dir or os.getcwd())
        zoo_main.get_caller_path = lambda: root
        zoo_main.pymarlzooplus(["pymarlzooplus/main.py", *argv])


def _returns_extras(mac_cls):
    """The MAC's `select_actions` in PyMARLzoo+'s shape: `(actions, extras_dict)`."""

    class ZooMAC(mac_cls):
        def select_actions(self, *args, **kwargs):
            return super().select_actions(*args, **kwargs), {}

    ZooMAC.__name__ = ZooMAC.__qualname__ = mac_cls.__name__
    ZooMAC.__module__ = mac_cls.__module__
    return ZooMAC
