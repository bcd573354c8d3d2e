"""SMACv2 (`--env-config=sc2v2`): check its two installs before a host spends time starting a run.

SMACv2 needs the GitHub-only `smacv2` package AND a StarCraft II install (Linux: 4.10, with the SMAC
maps) found through `$SC2PATH`. Without the game, importing smacv2 and `get_env_info()` work and only
`reset()` fails (FileNotFoundError for `$SC2PATH/Versions`, or SC2LaunchError), i.e. after the host
has built its learner and buffers. `check_sc2v2()` fails first, with one message naming every fix.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from r3dm_epymarl.errors import UserError

SMACV2_INSTALL = "pip install git+https://github.com/oxwhirl/smacv2.git"
SC2_DOWNLOAD = ("StarCraft II 4.10 (Linux package from Blizzard's s2client-proto: "
                "https://github.com/Blizzard/s2client-proto#downloads), unzipped with the SMAC maps "
                "(https://github.com/oxwhirl/smac#smac-maps) in its Maps/ folder")


def default_sc2_path() -> Path:
    """Where pysc2 looks when SC2PATH is not set."""
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform.startswith("win"):
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def sc2_path() -> Path:
    value = os.environ.get("SC2PATH")
    return Path(value).expanduser() if value else default_sc2_path()


def check_sc2v2() -> None:
    """Raise one UserError listing what is missing for SMACv2: the smacv2 package, StarCraft II."""
    missing = []
    try:
        importlib.import_module("smacv2")
    except ImportError as e:
        missing.append(f"the smacv2 package is not importable ({e})")
    path = sc2_path()
    where = f"SC2PATH={path}" if os.environ.get("SC2PATH") else f"the default path {path} (SC2PATH is not set)"
    if not (path / "Versions").is_dir():
        missing.append(f"no StarCraft II install at {where}: it has no Versions/ folder")
    if missing:
        raise UserError(
            "SMACv2 (--env-config=sc2v2) cannot run: " + "; ".join(missing) + ". To fix: "
            f"(1) {SMACV2_INSTALL}; (2) install {SC2_DOWNLOAD}; (3) export SC2PATH=<that StarCraftII folder>. "
            "Without StarCraft II, use the SMAX env instead (--env-config=smax, pip install jaxmarl==0.2.0)")
