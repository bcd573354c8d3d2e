"""Bad input: one clear line naming the fix, a non-zero exit, no traceback."""
import importlib.util

from r3dm_epymarl.cli import main


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


def test_sc2v2_on_pymarlzooplus_says_it_needs_an_epymarl_checkout(capsys, zoo_available):
    assert main(["run", "--host", "pymarlzooplus", "--config=r3dm", "--env-config=sc2v2"]) == 2
    line = _one_clean_line(capsys)
    assert "runs on the EPyMARL host only" in line and "--epymarl PATH" in line and "smax" in line


def test_unknown_intrinsic_term_is_one_line_before_the_host_starts(capsys, zoo_available):
    assert main(["run", "--host", "pymarlzooplus", "--config=r3dm", "--env-config=gymma", "with",
                 'intrinsic_terms=["policy_kl","curiosity"]']) == 2
    line = _one_clean_line(capsys)
    assert "'intrinsic_terms' names 'curiosity'" in line and "world_model" in line


def test_errors_raised_inside_a_sacred_run_print_no_traceback():
    """Sacred prints a SacredError whose print_traceback is False as one line; a plain UserError
    (no builtin base before SacredError in the MRO) used to get True from SacredError.__init__."""
    from r3dm_epymarl.errors import ConfigError, TrainingDiverged, UserError, for_sacred

    for error in (UserError("x"), ConfigError("y"), TrainingDiverged("z")):
        shaped = for_sacred(error)
        assert shaped.print_traceback is False and isinstance(shaped, type(error)) and str(shaped) == str(error)
