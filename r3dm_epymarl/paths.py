"""Where the plug-in's data files live (for a wheel install and a source checkout alike), and whether
the folders the tools write to can be made."""
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


def published_curves() -> Path:
    """The published StarCraft II test win-rate curves (experiments/report/paper.py says how it is made)."""
    return _PKG / "data" / "published_curves.csv"


def check_writable(path, option: str, is_file: bool = False) -> None:
    """Fail in one line, before any work, where the tools could not write `path` (a folder, or a file
    with `is_file`): it, or a folder above it, is a file (or a folder where a file goes), or the nearest
    existing folder above it cannot be written. Nothing is created here."""
    import os

    from r3dm_epymarl.errors import UserError

    target = Path(path)
    if target.exists() and target.is_dir() == is_file:
        raise UserError(f"{option} {path}: that is a {'folder' if is_file else 'file'}: give a "
                        f"{'file' if is_file else 'folder'} path")
    for above in target.parents:
        if above.exists():
            if not above.is_dir():
                raise UserError(f"{option} {path}: {above} is a file, not a folder: give a path under a folder")
            if not os.access(above, os.W_OK | os.X_OK):
                raise UserError(f"{option} {path}: {above} is not writable: give a path you can write to")
            return
