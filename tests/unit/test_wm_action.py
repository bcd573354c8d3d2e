"""`wm_action`: which action the world models' step t -> t+1 is fed. `current` (the paper) feeds a_t;
`published` feeds what the published code does, a_{t-1} (zeros at t = 0, a_t on an episode's last
transition), so neither model sees a_t and a role that decides a_t is worth something to the role model."""
import pytest
import torch as th

from r3dm_epymarl.config import check_key
from r3dm_epymarl.errors import ConfigError
from r3dm_epymarl.intrinsic.world_model import observed, published_actions
from r3dm_epymarl.intrinsic.world_model import WorldModelReward
from tests.unit.test_world_model import context, make_batch, term_for


@pytest.fixture(autouse=True)
def _seed():
    th.manual_seed(0)


def test_published_actions_index_by_index():
    """Episode 0 has 5 transitions (observations 0..5), episode 1 has 2 (observations 0..2, then padding)."""
    batch = make_batch(B=2, T=7, N=1, A=8, lengths=[5, 2])
    a = th.tensor([[1, 2, 3, 4, 5, 6, 7], [3, 5, 7, 1, 2, 4, 6]])
    batch["actions_onehot"] = th.nn.functional.one_hot(a, 8).float().unsqueeze(2)
    fed = published_actions(batch["actions_onehot"], observed(batch))[:, :, 0]  # [B, T, A]
    none = -1
    index = th.where(fed.sum(-1) > 0, fed.argmax(-1), th.full_like(a, none))
    # episode 0: t = 0 zeros; t = 1..3 a_{t-1}; t = 4, the last transition (o_5 is the last observation), a_4
    assert index[0, :5].tolist() == [none, 1, 2, 3, 5]
    # episode 1: t = 0 zeros; t = 1 is its last transition: a_1
    assert index[1, :2].tolist() == [none, 5]
    # a one-transition episode: its only transition is the last one, so it is fed a_0 (not zeros)
    short = make_batch(B=1, T=3, N=1, A=8, lengths=[1])
    short["actions_onehot"] = th.nn.functional.one_hot(th.tensor([[4, 2, 0]]), 8).float().unsqueeze(2)
    assert published_actions(short["actions_onehot"], observed(short))[0, 0, 0].argmax().item() == 4


def test_the_streams_follow_the_switch():
    batch = make_batch(B=3, T=8, N=2, lengths=[7, 4, 6])
    ctx = context(batch)
    _, current, _, (B, T, N) = term_for(batch)._streams(ctx)
    _, published, _, _ = term_for(batch, wm_action="published")._streams(ctx)
    streams = lambda x: x.float().transpose(0, 1).reshape(T, B * N, -1)  # noqa: E731
    assert th.equal(current, streams(batch["actions_onehot"]))
    assert th.equal(published, streams(published_actions(batch["actions_onehot"], observed(batch))))
    assert not th.equal(current, published)


def test_bad_value_is_a_config_error():
    """The learner's schema stops a run at construction, the term itself too (a direct construction)."""
    with pytest.raises(ConfigError, match="wm_action.*current.*published"):
        check_key("wm_action", "previous", WorldModelReward.keys["wm_action"], "r3dm")
    check_key("wm_action", "published", WorldModelReward.keys["wm_action"], "r3dm")
    batch = make_batch(B=2, T=5, N=2)
    with pytest.raises(ConfigError, match="wm_action.*published"):
        term_for(batch, wm_action="previous")


B, T, N, A, SCALE = 8, 12, 2, 3, 3.0


def role_decides_action(generator):
    """A role class c_t drawn afresh every step, z_t = one-hot(c_t), the action a_t = c_t, and the next
    observation o_{t+1} = SCALE * one-hot(a_t): only a_t (or z_t) predicts o_{t+1}."""
    batch = make_batch(B=B, T=T, N=N, obs=A, A=A, lengths=[T - 1] * B)
    role = th.randint(0, A, (B, T, N), generator=generator)
    onehot = th.nn.functional.one_hot(role, A).float()
    batch["actions"] = role.unsqueeze(-1)
    batch["actions_onehot"] = onehot
    batch["obs"] = th.cat([th.zeros(B, 1, N, A), SCALE * onehot[:, :-1]], 1)
    return context(batch, z=onehot.clone(), R=A)


def trained_r_obs(wm_action: str, updates: int = 150) -> float:
    """The mean r_obs on a held-out batch after `updates` world-model updates on fresh batches."""
    generator = th.Generator().manual_seed(1)
    term = term_for(role_decides_action(generator).batch, R=A, wm_action=wm_action, wm_lr=1e-3,
                    wm_target_tau=1.0, r3dm_beta3=0.0)
    for _ in range(updates):
        term.update(role_decides_action(generator))
    held_out = role_decides_action(th.Generator().manual_seed(99))
    with th.no_grad():
        term.reward(held_out)
    r_obs, mask = term.reward_parts["r_int_obs"], held_out.mask
    return float((r_obs * mask).sum() / mask.sum())


def test_published_alignment_pays_the_role_model_for_knowing_the_action():
    """Under `published` the agnostic model never sees a_t and the role model reads it from z_t: a large
    r_obs (a wrong guess of one of 3 actions costs 2 symlog(3)^2 = 3.8). Under `current` both models see
    a_t and predict o_{t+1} alike: r_obs near 0."""
    current, published = trained_r_obs("current"), trained_r_obs("published")
    assert published > 1.0
    assert abs(current) < 0.1
