"""R3DM on synthetic batches: the policy term, the intrinsic hook, presets, R3DM-vs-ACORM equivalence."""
import pytest
import torch as th
import yaml

from r3dm_epymarl.errors import ConfigError, TrainingDiverged
from r3dm_epymarl.intrinsic import TERMS
from r3dm_epymarl.intrinsic.base import IntrinsicTerm, UpdateContext
from r3dm_epymarl.intrinsic.policy_kl import PolicyKLReward
from r3dm_epymarl.learners.q_learner import td_mask
from r3dm_epymarl.paths import config_dir
from r3dm_epymarl.presets import with_presets
from tests.synthetic import build_learner, make_batch

POLICY_ONLY = {"intrinsic_terms": ["policy_kl"], "pretrain_encoder_steps": 0, "pretrain_contrastive_steps": 0}


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def _ctx(learner, batch):
    unrolled = learner.mac.unroll(batch)
    return UpdateContext(batch, unrolled.q, unrolled.extras["z"], td_mask(batch)[1], learner.mac, 0)


# --- policy_kl ----------------------------------------------------------------------------------

def test_role_swap_batched_equals_naive_pair_loop():
    batch = make_batch(B=2, T=6, N=3)
    learner, _ = build_learner(batch, "r3dm", **POLICY_ONLY)
    mac = learner.mac
    x = mac.trajectory_inputs(batch)  # [B, T, N, in]
    unrolled = mac.unroll(batch)
    q, z = unrolled.q, unrolled.extras["z"]
    fast = mac.agent.unroll_role_swapped(x, z)  # [B, T, Ni, Nj, A]
    for i in range(3):
        for j in range(3):
            h, naive = mac.agent.init_hidden().expand(2, -1), []
            for t in range(6):  # the acting path, one step at a time, on [x_i, z_j]
                q_t, h = mac.agent(th.cat([x[:, t, i], z[:, t, j]], dim=-1), h)
                naive.append(q_t)
            assert th.allclose(fast[:, :, i, j], th.stack(naive, 1), atol=1e-5), (i, j)
    assert th.allclose(th.diagonal(fast, dim1=2, dim2=3).permute(0, 1, 3, 2), q, atol=1e-5)


def _equal_roles_reward(beta1):
    batch = make_batch()
    learner, _ = build_learner(batch, "r3dm", r3dm_beta1=beta1, **POLICY_ONLY)
    ctx = _ctx(learner, batch)
    same = ctx.z[:, :, :1].expand_as(ctx.z).contiguous()
    q_same = learner.mac.agent.unroll_role_swapped(learner.mac.trajectory_inputs(batch), same)[:, :, :, 0]
    term = PolicyKLReward(learner.args, obs_dim=6)
    with th.no_grad():
        r_same = term.reward(UpdateContext(batch, q_same, same, ctx.mask, learner.mac, 0))
        r_diverse = term.reward(ctx)
    return r_same, r_diverse, ctx.mask


def test_policy_reward_is_zero_when_all_roles_are_equal_at_beta1_one():
    r, r_diverse, mask = _equal_roles_reward(1.0)
    assert r.shape == (4, 9, 1) and r.abs().max() < 1e-6
    assert (r_diverse >= -1e-7).all() and r_diverse.max() > 1e-6, "KL is non-negative and non-zero for distinct roles"
    assert (r_diverse[mask == 0] == 0).all(), "masked steps get no reward"


@pytest.mark.parametrize("beta1", [0.2, 2.0])
def test_policy_reward_with_beta1_not_one_scales_only_the_own_policy(beta1):
    """Published: pi_i = softmax(beta1 Q_i(z_i)) against the mean of softmax(Q_i(z_j)) without beta1, so
    with equal roles the term is KL(softmax(beta1 Q) || softmax(Q)) > 0, not 0."""
    r, _, mask = _equal_roles_reward(beta1)
    active = r[mask > 0]
    assert (active > 1e-4).all() and (r[mask == 0] == 0).all()


# --- the hook in the learner --------------------------------------------------------------------

def _td_losses(algorithm, steps=4, **overrides):
    batch = make_batch(seed=5)
    th.manual_seed(42)
    learner, logger = build_learner(batch, algorithm, contrastive_interval=2, **overrides)
    for t in range(steps):
        learner.train(batch, t, t)
    return [v for _, v in logger.stats["loss_td"]], logger


def test_r3dm_with_alpha_zero_and_no_world_model_is_acorm():
    acorm, _ = _td_losses("acorm")
    r3dm, logger = _td_losses("r3dm", intrinsic_terms=["policy_kl"], intrinsic_alpha=0.0)
    assert acorm == r3dm
    assert "r_int_policy_mean" in logger.stats  # the term ran; alpha = 0 kept it out of the target
    with_alpha, _ = _td_losses("r3dm", intrinsic_terms=["policy_kl"], intrinsic_alpha=0.5, r3dm_beta2=5.0)
    assert all(a != b for a, b in zip(with_alpha, acorm))  # with alpha > 0, r_int enters every target


def test_alpha_anneals_linearly_to_zero():
    batch = make_batch()
    learner, _ = build_learner(batch, "r3dm", intrinsic_alpha=0.03, intrinsic_anneal_start=2_000_000,
                               intrinsic_anneal_steps=1_000_000, **{k: v for k, v in POLICY_ONLY.items()})
    alpha = learner.intrinsic_alpha
    assert alpha(0) == alpha(2_000_000) == pytest.approx(0.03)
    assert alpha(2_500_000) == pytest.approx(0.015)
    assert alpha(3_000_000) == alpha(9_000_000) == 0.0


class NaNTerm(IntrinsicTerm):
    name, log_name = "nan_term", "r_int_nan"

    def reward(self, ctx):
        return th.full_like(ctx.mask, float("nan"))


def test_nan_in_a_term_stops_training_naming_it_after_flushing_logs(monkeypatch):
    monkeypatch.setitem(TERMS, "nan_term", f"{__name__}:NaNTerm")
    batch = make_batch()
    learner, logger = build_learner(batch, "r3dm", intrinsic_terms=["policy_kl", "nan_term"],
                                    pretrain_encoder_steps=1, pretrain_contrastive_steps=0)
    learner.train(batch, 6, 1)  # the one pre-training step (no TD, no reward)
    with pytest.raises(TrainingDiverged, match="'r_int_nan' became NaN or inf at t_env=7"):
        learner.train(batch, 7, 2)
    assert "r_int_policy_mean" in logger.stats and "loss_pretrain" in logger.stats  # flushed before stopping


class LateNaNTerm(IntrinsicTerm):
    """Finite rewards, then NaN from t_env = 13 on, and a NaN loss of its own from t_env = 14 on."""
    name, log_name = "late_nan_term", "r_int_late_nan"

    def update(self, ctx):
        return {"loss_late": th.tensor(float("nan") if ctx.t_env >= 14 else 1.0)}

    def reward(self, ctx):
        return th.full_like(ctx.mask, float("nan") if ctx.t_env >= 13 else 0.5)


def test_nan_between_log_steps_is_found_at_the_next_one_naming_its_first_step_and_the_range(monkeypatch):
    """NaN / inf is watched on the device (no host sync per update) and read at the next log step: the
    error names the term that diverged first, the t_env where it did, and the steps that were checked."""
    monkeypatch.setitem(TERMS, "late_nan_term", f"{__name__}:LateNaNTerm")
    batch = make_batch()
    learner, logger = build_learner(batch, "r3dm", intrinsic_terms=["policy_kl", "late_nan_term"],
                                    learner_log_interval=10, **{k: v for k, v in POLICY_ONLY.items()
                                                                if k != "intrinsic_terms"})
    for t in (0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19):  # logs at 0 and 10, then not until 20
        learner.train(batch, t, t)
    assert logger.stats["loss_td"][-1][0] == 10
    with pytest.raises(TrainingDiverged, match=r"'r_int_late_nan' became NaN or inf at t_env=13 \(checked on the "
                                               r"device and read at the log step t_env=20, the previous one at "
                                               r"t_env=10\)"):
        learner.train(batch, 20, 20)
    assert logger.stats["r_int_late_nan"][-1] == (20, pytest.approx(float("nan"), nan_ok=True))
    assert logger.stats["loss_td"][-1][0] == 20 and logger.stats["r_int_policy_mean"][-1][0] == 20  # flushed


def test_unknown_term_is_a_config_error():
    with pytest.raises(ConfigError, match="'intrinsic_terms' names 'curiosity'"):
        build_learner(make_batch(), "r3dm", intrinsic_terms=["curiosity"])


def test_policy_term_trains_nothing_of_its_own_and_saves_with_the_learner(tmp_path):
    batch = make_batch()
    learner, _ = build_learner(batch, "r3dm", **POLICY_ONLY)
    assert not list(learner.intrinsic.parameters())
    learner.train(batch, 0, 0)
    learner.save_models(tmp_path)
    fresh, _ = build_learner(batch, "r3dm", **POLICY_ONLY)
    fresh.load_models(tmp_path)
    learner.train(batch, 1, 1)
    fresh.train(batch, 1, 1)
    assert learner.logger.stats["loss_td"][-1] == fresh.logger.stats["loss_td"][-1]


# --- configs and presets ------------------------------------------------------------------------

def _yaml(name):
    return yaml.safe_load((config_dir() / "algs" / f"{name}.yaml").read_text())


def test_r3dm_yaml_keeps_every_acorm_value():
    acorm, r3dm = _yaml("acorm"), _yaml("r3dm")
    differ = {k for k in acorm if acorm[k] != r3dm.get(k)}
    assert differ == {"name", "learner"}


SPEC_MAPS = ["3s5z_vs_3s6z", "6h_vs_8z", "corridor", "MMM2", "5m_vs_6m", "27m_vs_30m", "3s5z",
             "protoss_5_vs_5", "terran_5_vs_5", "zerg_5_vs_5", "protoss_10_vs_11", "terran_10_vs_11"]


def test_presets_cover_the_spec_maps_with_declared_keys():
    presets = yaml.safe_load((config_dir() / "presets" / "r3dm.yaml").read_text())
    assert sorted(presets) == sorted(SPEC_MAPS)
    r3dm = _yaml("r3dm")
    for map_name, keys in presets.items():
        assert {"r3dm_beta1", "r3dm_beta2", "r3dm_beta3", "intrinsic_alpha", "wm_horizon"} <= set(keys)
        for key, value in keys.items():
            assert key in r3dm and type(value) is type(r3dm[key]), (map_name, key)
    assert presets["6h_vs_8z"] == {"r3dm_beta1": 1.0, "r3dm_beta2": 1.0, "r3dm_beta3": 1.0,
                                   "intrinsic_alpha": 0.01, "wm_horizon": 2}


def test_presets_apply_for_the_map_and_the_command_line_wins():
    config = {"name": "r3dm", "env_args": {"map_name": "5m_vs_6m"}}
    argv, added = with_presets(["--config=r3dm", "with", "intrinsic_alpha=0.2"], config)
    assert added == {"r3dm_beta1": 2.0, "r3dm_beta2": 1.0, "r3dm_beta3": 0.0, "wm_horizon": 2}
    assert "intrinsic_alpha=0.2" in argv and "r3dm_beta1=2.0" in argv and "intrinsic_alpha=0.05" not in argv
    assert with_presets(["x"], {"name": "r3dm", "env_args": {"map_name": "nowhere"}}) == (["x"], {})
    assert with_presets(["x"], {"name": "acorm", "env_args": {"map_name": "5m_vs_6m"}}) == (["x"], {})


def test_a_renamed_variant_is_told_which_preset_it_misses():
    from r3dm_epymarl.presets import renamed_without_preset

    variant = {"name": "r3dm_policy_kl", "learner": "r3dm_learner", "env_args": {"map_name": "5m_vs_6m"}}
    assert with_presets(["x"], variant) == (["x"], {})  # presets follow `name`
    note = renamed_without_preset(variant)
    assert note.startswith("r3dm-epymarl: name=r3dm_policy_kl gets no preset") and "r3dm_beta1=2.0" in note
    assert "r3dm_beta1" not in renamed_without_preset(variant, {"r3dm_beta1"})  # given after `with`
    assert renamed_without_preset(variant, {"r3dm_beta1", "r3dm_beta2", "r3dm_beta3", "intrinsic_alpha",
                                            "wm_horizon"}) is None  # all given: nothing missed
    assert renamed_without_preset({**variant, "env_args": {"map_name": "2s3z"}}) is None  # no preset there
    assert renamed_without_preset({**variant, "name": "r3dm"}) is None  # the preset applies as usual
    assert renamed_without_preset({"name": "qmix", "learner": "q_learner",
                                   "env_args": {"map_name": "5m_vs_6m"}}) is None


def test_action_softmaxes_equal_torch_with_masked_actions():
    from r3dm_epymarl.intrinsic.base import action_log_softmax, action_softmax

    x = th.randn(4, 6, 3, 15) * 5
    x[..., 3:7] = -1e9  # masked actions, as the terms mask them
    assert th.allclose(action_softmax(x.clone()), th.softmax(x, -1), atol=1e-6)
    assert th.allclose(action_log_softmax(x.clone())[..., 7:], th.log_softmax(x, -1)[..., 7:], atol=1e-5)
    assert (action_softmax(x)[..., 3:7] == 0).all()
