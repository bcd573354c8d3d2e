"""Each intrinsic-reward term owns its config keys: declared once (type, default, range, doc), checked by
the learner with its own keys, read as `args.key` (never a guessed default in the term)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from r3dm_epymarl.config import Key, validate
from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.intrinsic import TERMS, term_class, term_keys
from r3dm_epymarl.registry import ALGORITHMS

INTRINSIC = Path(__file__).resolve().parents[2] / "r3dm_epymarl" / "intrinsic"


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS.values() if a.schema], ids=lambda a: a.name)
def test_each_term_default_is_the_yaml_value(algorithm):
    config = yaml.safe_load(algorithm.yaml_path.read_text())
    for name, key in term_keys(config.get("intrinsic_terms")).items():
        assert config[name] == key.default, (algorithm.name, name)


def test_no_term_guesses_a_default():
    for path in INTRINSIC.glob("*.py"):
        assert "getattr(args" not in path.read_text() and "getattr(self.args" not in path.read_text(), path.name


def test_one_validator_per_key_the_schema_refuses_a_bad_target_rate():
    schema = ALGORITHMS["r3dm"].load_schema()
    config = yaml.safe_load(ALGORITHMS["r3dm"].yaml_path.read_text())
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="wm_target_tau"):
            validate({**config, "wm_target_tau": bad}, schema, where="r3dm")
    validate({**config, "wm_target_tau": 1.0}, schema, where="r3dm")


def test_missing_term_keys_get_their_declared_defaults():
    args = SimpleNamespace(intrinsic_terms=["world_model"], wm_horizon=3)
    validate(args, term_keys(args.intrinsic_terms), where="x", fill_defaults=True)
    assert args.wm_horizon == 3 and args.wm_lr == 1e-4 and args.wm_action == "current" and args.r3dm_beta1 == 1.0
    with pytest.raises(ConfigError, match="'width' is missing"):  # a key without a default stays required
        validate(SimpleNamespace(), {"width": Key(int, "required")}, where="x")


def test_a_shared_key_is_one_declaration():
    policy, world = term_class("policy_kl"), term_class("world_model")
    assert policy.keys["r3dm_beta1"] is world.keys["r3dm_beta1"]
    assert set(term_keys(["policy_kl", "world_model"])) == set(policy.keys) | set(world.keys)


def test_a_term_of_ones_own_by_import_path_and_one_line_errors():
    assert term_class("r3dm_epymarl.intrinsic.policy_kl:PolicyKLReward") is term_class("policy_kl")
    for entry, fragment in [("nope", "choose from"), ("no.such.module:Term", "cannot be imported"),
                            ("r3dm_epymarl.config:Key", "not an IntrinsicTerm")]:
        with pytest.raises(ConfigError, match=fragment):
            term_class(entry)
    with pytest.raises(ConfigError, match="must be a list"):
        term_keys("policy_kl")
    assert sorted(TERMS) == ["cds", "policy_kl", "world_model"]


# --- what a term reads, against what the controller provides (issue #39 item 2) -------------------
@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS.values() if a.schema], ids=lambda a: a.name)
def test_every_shipped_algorithm_provides_what_its_terms_need(algorithm):
    from r3dm_epymarl.intrinsic.contract import check_terms

    config = yaml.safe_load(algorithm.yaml_path.read_text())
    config.setdefault("hidden_dim", 64)  # a host default.yaml key
    check_terms(config, config.get("intrinsic_terms"), where=f"--config={algorithm.name}")


def test_a_term_under_a_controller_without_what_it_reads_is_refused_in_one_line():
    from r3dm_epymarl.intrinsic.contract import check_terms

    r3dm = yaml.safe_load(ALGORITHMS["r3dm"].yaml_path.read_text())
    with pytest.raises(ConfigError) as refused:
        check_terms({**r3dm, "hidden_dim": 64}, ["cds"], where="--config=r3dm")
    assert str(refused.value) == (
        "--config=r3dm: intrinsic term 'cds' needs hidden (mac role_mac with agent role_rnn provides "
        "trajectory_hidden, z): use it under an algorithm whose controller provides these (docs/EXTENDING.md, "
        "'What a term reads')")
    cds = yaml.safe_load(ALGORITHMS["cds"].yaml_path.read_text())
    with pytest.raises(ConfigError, match=r"intrinsic term 'policy_kl' needs z .*; agent.unroll_role_swapped "
                                          r"\(agent cds_rnn has no unroll_role_swapped\)"):
        check_terms(cds, ["policy_kl"], where="--config=cds")

