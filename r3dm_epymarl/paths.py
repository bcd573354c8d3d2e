"""Where the plug-in's data files live, for a wheel install and for a source checkout alike."""
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # A wheel carries the folder inside the package (setup.cfg package_dir); a source checkout or an
    # editable install keeps it at the repository's top level, beside the package.
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"r3dm-epymarl is installed without its {name}/ folder (looked in {_PKG})")


def config_dir() -> Path:
    return _shipped("config_overrides")


def patches_dir() -> Path:
    return _shipped("patches")


def paper_results() -> Path:
    """The published SMAC/SMACv2 (StarCraft II) test win rates: map, algorithm, horizon, final rate."""
    return _PKG / "data" / "paper_results.csv"
