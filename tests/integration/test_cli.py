"""The command in a fresh process, as users start it: help without a host, and importing the package
and its command line loads nothing heavy."""
import subprocess
import sys

from tests.helpers import cli


def test_help_works_without_a_host():
    proc = cli("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "install" in proc.stdout


def test_import_is_lazy():
    code = ("import sys, r3dm_epymarl, r3dm_epymarl.registry, r3dm_epymarl.cli; "
            "heavy = [m for m in ('torch', 'sacred', 'pymarlzooplus', 'learners', 'run') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
