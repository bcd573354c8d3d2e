"""Upstream EPyMARL (a git checkout, not a package): locate `src/`, launch `main.py`, apply patches."""
from __future__ import annotations

import importlib.util
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.hosts.base import EPYMARL, Host

# Files whose presence makes a directory an EPyMARL checkout.
_MARKERS = ("src/main.py", "src/run.py", "src/learners/__init__.py", "src/config/default.yaml")


def locate_checkout(path) -> Path:
    root = Path(path).expanduser().resolve()
    missing = [m for m in _MARKERS if not (root / m).is_file()]
    if missing:
        raise UserError(f"{root} is not an EPyMARL checkout (no {missing[0]}): pass the folder that holds "
                        "src/main.py, e.g. a clone of github.com/uoe-agents/epymarl")
    return root


def find_imported_checkout() -> str | None:
    """The checkout whose `src/` the running process imports from (the patched main.py case)."""
    run_module = sys.modules.get("run")
    learners = sys.modules.get("learners")
    if run_module is None or learners is None or not getattr(run_module, "__file__", None):
        return None
    src = Path(run_module.__file__).resolve().parent
    if (src / "main.py").is_file() and Path(learners.__file__).resolve().parent.parent == src:
        return str(src.parent)
    return None


def _placeholder_smaclite():
    """Upstream `envs/__init__.py` imports the GitHub-only smaclite unconditionally; without it no env
    works. For an unpatched checkout the launcher lets that import succeed and fail only on use."""
    module = types.ModuleType("smaclite")

    def __getattr__(name):
        if name.startswith("__"):  # introspection (torch, inspect) must see an ordinary module
            raise AttributeError(name)
        raise ImportError("smaclite is not installed (GitHub-only): pip install "
                          "git+https://github.com/uoe-agents/smaclite.git")

    module.__getattr__ = __getattr__
    return module


class EPyMARLHost(Host):
    name = EPYMARL
    prefix = ""  # src/ is the import root: host modules are top-level names

    def __init__(self, checkout):
        if not checkout:
            raise UserError("no EPyMARL checkout given: pass --epymarl PATH or set EPYMARL_PATH")
        self.root = locate_checkout(checkout)
        self.src = self.root / "src"
        if str(self.src) not in sys.path:
            sys.path.insert(0, str(self.src))
        # Before the host's envs package is first imported (the launcher case), an unpatched checkout
        # needs smaclite importable; a patched main.py has imported envs already and needs nothing.
        if "envs" not in sys.modules and "smaclite" not in sys.modules \
                and importlib.util.find_spec("smaclite") is None:
            from r3dm_epymarl.hosts.interventions import require

            require("epymarl-smaclite", self)
            sys.modules["smaclite"] = _placeholder_smaclite()

    @property
    def config_dir(self) -> Path:
        return self.src / "config"

    def run(self, argv, base_dir=None):
        # EPyMARL's own main.py, unchanged: it reads sys.argv and writes Sacred runs to the checkout's
        # results/ (the launcher's observer hook moves them under base_dir) and models to
        # `local_results_path` relative to the working directory (base_dir while it runs).
        main_py = self.src / "main.py"
        old_argv, old_cwd = sys.argv, os.getcwd()
        sys.argv = [str(main_py), *argv]
        try:
            if base_dir:
                os.makedirs(base_dir, exist_ok=True)
                os.chdir(base_dir)
            runpy.run_path(str(main_py), run_name="__main__")
        finally:
            sys.argv = old_argv
            os.chdir(old_cwd)


# --- patches for a checkout -------------------------------------------------------------------------

def _git():
    git = shutil.which("git")
    if git is None:
        raise UserError("applying the patches needs git on PATH (apt-get install git), or use the "
                        "launcher: python -m r3dm_epymarl run --epymarl PATH ...")
    return git


def _run_apply(root: Path, patch: Path, *flags) -> subprocess.CompletedProcess:
    # `git apply` works on plain folders too (it does not need the checkout to be a git repository).
    # The ceiling stops git from finding an enclosing repository above the checkout, whose root would
    # otherwise become the base of the patch's paths.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(root.parent)}
    return subprocess.run([_git(), "apply", *flags, str(patch)], cwd=root, env=env, capture_output=True, text=True)


def _apply(root: Path, patch: Path, *flags) -> bool:
    return _run_apply(root, patch, *flags).returncode == 0


def patch_status(root: Path, patch: Path) -> str:
    if _apply(root, patch, "--check"):
        return "not applied"
    if _apply(root, patch, "--check", "--reverse"):
        return "applied"
    return "conflict"


def install_patches(path, check: bool = False) -> list[tuple[str, str]]:
    """Apply every patch in patches/ to the checkout at `path`; return (patch, outcome) pairs."""
    from r3dm_epymarl.paths import patches_dir

    root = locate_checkout(path)
    outcomes = []
    for patch in sorted(patches_dir().glob("*.patch")):
        status = patch_status(root, patch)
        if status == "conflict":
            raise UserError(f"{patch.name} does not apply to {root}: the checkout has local changes to the "
                            "same lines or is a different EPyMARL version; use the launcher instead "
                            "(python -m r3dm_epymarl run --epymarl PATH ...)")
        if check:
            outcomes.append((patch.name, status))
        elif status == "applied":
            outcomes.append((patch.name, "already applied"))
        else:
            result = _run_apply(root, patch)
            if result.returncode != 0:
                reason = " ".join((result.stderr or result.stdout).split())[:300] or f"exit {result.returncode}"
                raise UserError(f"git apply {patch.name} failed in {root}: {reason}")
            outcomes.append((patch.name, "applied"))
    return outcomes
