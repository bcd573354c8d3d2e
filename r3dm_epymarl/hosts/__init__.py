"""Hosts: THE ONLY place that imports host modules (upstream EPyMARL or PyMARLzoo+).

A `Host` hides where the host's modules live (top-level names in an EPyMARL checkout's `src/`, or the
`pymarlzooplus` package) and the few interface differences between the two (`adapt`).
"""
from __future__ import annotations

import importlib.util
import os

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.hosts.base import EPYMARL, HOST_NAMES, REGISTRY_MODULES, ZOO, Host

__all__ = ["EPYMARL", "HOST_NAMES", "REGISTRY_MODULES", "ZOO", "Host", "get_host"]


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
