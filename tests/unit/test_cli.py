"""Bad input: one clear line naming the fix, a non-zero exit, no traceback."""
import importlib.util

import pytest

from r3dm_epymarl.cli import main
from tests.conftest import cli


def _one_clean_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("r3dm-epymarl: error: "), err
    return err[0]


def test_unknown_config_name(capsys, zoo_available):
    assert main(["run", "--host", "pymarlzooplus", "--config=nope", "--env-config=gymma"]) == 2
    line = _one_clean_line(capsys)
    assert "unknown --config 'nope'" in line and "r3dm_qmix" in line and "qmix" in line


def test_unknown_env_config_name(capsys, zoo_available):
    assert main(["run", "--host", "pymarlzooplus", "--config=r3dm_qmix", "--env-config=nowhere"]) == 2
    assert "unknown --env-config 'nowhere'" in _one_clean_line(capsys)


def test_path_that_is_not_epymarl(capsys, tmp_path):
    assert main(["install", str(tmp_path)]) == 2
    assert "is not an EPyMARL checkout" in _one_clean_line(capsys)
    assert main(["run", "--epymarl", str(tmp_path), "--config=qmix", "--env-config=gymma"]) == 2
    assert "is not an EPyMARL checkout" in _one_clean_line(capsys)


def test_no_host_installed(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pymarlzooplus" else real(name, *a))
    monkeypatch.delenv("EPYMARL_PATH", raising=False)
    assert main(["run", "--config=r3dm_qmix", "--env-config=gymma"]) == 2
    line = _one_clean_line(capsys)
    assert "no host found" in line and "pymarlzooplus" in line and "--epymarl" in line


def test_help_works_without_a_host():
    proc = cli("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "install" in proc.stdout
