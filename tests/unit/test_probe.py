"""The role probe's estimator on settings where the answer is known, and its sample assembly."""
import numpy as np
import pytest

from r3dm_epymarl.experiments.probe import build_samples
from r3dm_epymarl.experiments.probe_fit import FitOptions, Samples, alike_starts, difference, role_gains

EPISODES, STEPS, N_ACTIONS = 120, 20, 4
OPTIONS = FitOptions(reps=500, hidden=64)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As `probe` runs its fits: small MLPs, where a second thread only adds contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(case: str, k: int = 1, seed: int = 0) -> Samples:
    """One agent-role per episode. `fixes`: the role decides the future actions and observations;
    `random`: roles drawn at random, the future a function of h; `copy`: the role is a copy of part of h."""
    rng = np.random.default_rng(seed)
    S = EPISODES * STEPS
    episode = np.repeat(np.arange(EPISODES), STEPS)
    h = rng.normal(size=(S, 6)).astype(np.float32)
    role = np.repeat(rng.integers(0, 2, size=EPISODES), STEPS)
    if case == "fixes":
        z = np.stack([role, 1 - role], 1) + rng.normal(scale=0.05, size=(S, 2))
        actions = np.tile((2 * role + (h[:, 0] > 0))[:, None], (1, k))
        obs = role[:, None, None] * 2.0 + 0.3 * rng.normal(size=(S, k, 3))
    else:
        actions = np.tile(((h[:, 0] > 0) + 2 * (h[:, 1] > 0))[:, None], (1, k))
        obs = h[:, None, :3] + 0.3 * rng.normal(size=(S, k, 3))
        z = rng.normal(size=(S, 2)) if case == "random" else h[:, :2].copy()
    e = np.concatenate([z, rng.normal(size=(S, 2))], 1)
    return Samples(h, z.astype(np.float32), e.astype(np.float32), actions.astype(np.int64),
                   obs.astype(np.float32), episode, N_ACTIONS)


def test_a_role_that_fixes_the_future_has_a_large_gain_with_a_ci_above_zero():
    gains = role_gains(synthetic("fixes"), OPTIONS)
    actions, obs = gains["actions"], gains["obs"]
    # The role decides one of the two bits of the action: ~log 2 = 0.69 nats and more (h alone is unsure).
    assert actions["gain_z"].lo > 0.5 and actions["nats_hz"] < 0.15
    assert obs["gain_z"].lo > 1.0
    assert obs["mse_ratio_z"].hi < 0.2
    assert gains["episodes"] == {"train": 84, "held_out": 36}


@pytest.mark.parametrize("case", ["random", "copy"])
def test_a_role_without_information_about_the_future_gains_nothing(case):
    gains = role_gains(synthetic(case), OPTIONS)
    for estimate in (gains["actions"]["gain_z"], gains["obs"]["gain_z"]):
        assert abs(estimate.value) < 0.05, (case, estimate)
        assert estimate.lo < 0.03 and estimate.hi > -0.08, (case, estimate)  # within noise of 0
    ratio = gains["obs"]["mse_ratio_z"]
    assert 0.97 < ratio.value < 1.05 and ratio.lo < 1.0 + 0.02, (case, ratio)


def test_difference_of_two_probes_subtracts_values_and_replicates():
    a = role_gains(synthetic("fixes"), OPTIONS)["actions"]["gain_z"]
    b = role_gains(synthetic("random"), OPTIONS)["actions"]["gain_z"]
    d = difference(a, b)
    assert d.value == pytest.approx(a.value - b.value)
    assert d.lo > 0.4 and d.lo < d.value < d.hi


def test_alike_starts_counts_pairs_with_different_roles_and_their_action_disagreement():
    # 3 episodes, 3 agents; agents 0 and 1 start alike (identical first observations), agent 2 far away.
    obs0 = np.zeros((3, 3, 2))
    obs0[:, 2] = 10.0
    labels = np.array([[0, 1, 1], [0, 0, 1], [0, 1, 0]])  # roles of 0 and 1 differ in episodes 0 and 2
    actions = np.zeros((3, 3, 4), dtype=int)
    actions[0, 1] = [1, 1, 0, 0]  # episode 0: different roles, actions differ in 2 of 4 steps
    actions[2, 1] = [1, 1, 1, 1]  # episode 2: in all 4
    actions[1, :, 2:] = -1  # episode 1 ended after 2 steps: only those count
    result = alike_starts(obs0, labels, actions, quantile=1 / 3)
    assert result["pairs"] == 3 and result["different_roles"] == pytest.approx(2 / 3)
    assert result["action_disagreement_different_roles"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["action_disagreement_same_role"] == 0.0


def test_build_samples_aligns_history_role_and_the_next_k_steps():
    """Two episodes (5 and 3 executed steps, each with a terminal row); obs[..., 0] = t, obs[..., 1] =
    agent, action = (t + agent) % 3, z[..., 0] = 10 t; agent 1 of episode 0 is dead from t = 3 on."""
    rows = []
    for executed in (5, 3):
        t = np.arange(executed + 1)[:, None].repeat(2, 1)  # [T+1, N=2]
        agent = np.arange(2)[None].repeat(executed + 1, 0)
        rows.append((t, agent))
    t = np.concatenate([r[0] for r in rows])
    agent = np.concatenate([r[1] for r in rows])
    avail = np.ones((len(t), 2, 3), dtype=int)
    avail[3:6, 1, 1:] = 0  # episode 0, agent 1 dead at t = 3, 4, 5 (only the no-op)
    data = {"obs": np.stack([t, agent], -1).astype(np.float32), "actions": (t + agent) % 3, "avail": avail,
            "z": (10.0 * t)[..., None].astype(np.float32), "e": np.zeros((len(t), 2, 1), np.float32),
            "offsets": np.array([0, 6, 10])}
    samples = build_samples(data, k=2, n_actions=3)
    # Episode 0: starts t = 0..3 (t + 2 <= 5), agent 1 alive at 0..2; episode 1: t = 0..1, both agents.
    assert len(samples) == 4 + 3 + 2 * 2
    step, who = samples.h[:, 0].astype(int), samples.h[:, 1].astype(int)
    assert (samples.z[:, 0] == 10 * step).all()
    assert (samples.actions == (step[:, None] + np.arange(2) + who[:, None]) % 3).all()  # a_t, a_{t+1}
    assert (samples.obs[:, :, 0] == step[:, None] + 1 + np.arange(2)).all()  # o_{t+1}, o_{t+2}
    previous = samples.h[:, 2:]  # one-hot a_{t-1}, zeros at t = 0
    assert (previous[step == 0] == 0).all()
    later = step > 0
    assert (previous[later].argmax(1) == (step[later] - 1 + who[later]) % 3).all()
    assert sorted(set(samples.episode.tolist())) == [0, 1]


def test_checkpoints_probed_for_the_same_step_are_compared_though_their_t_env_differ():
    """Runs save near, not at, the step asked for (ACORM at 50189, R3DM at 50212 for --steps 50000): the
    comparison pairs them by the step asked; before, it paired by t_env and printed no comparison."""
    from r3dm_epymarl.experiments.probe import MEASURES, comparisons
    from r3dm_epymarl.experiments.probe_fit import Estimate

    def result(algorithm, seed, t_env, value):
        rng = np.random.default_rng(seed)
        est = lambda: Estimate(value, value - 0.01, value + 0.01, value + 0.005 * rng.normal(size=200))  # noqa: E731
        gains = {target: {key: est() for t, key, _ in MEASURES if t == target} for target in ("actions", "obs")}
        return {"map": "2s3z", "algorithm": algorithm, "run_seed": seed, "t_env": t_env, "step": 50000,
                "horizons": {1: gains}}

    results = [result("acorm", 1, 50189, 0.02), result("r3dm", 1, 50212, 0.05),
               result("acorm", 2, 50134, 0.02), result("r3dm", 2, 50199, 0.06)]
    lines = comparisons(results)
    assert lines and lines[0].startswith("acorm - r3dm on 2s3z at step 50000 (seeds 1, 2;")
    assert "r3dm seed 1 t_env=50212" in lines[0]
    over = [line for line in lines if "over 2 seeds" in line]
    assert len(over) == len(MEASURES) and all("too few seeds" in line for line in over)
    assert "mean -0.035" in over[0]  # acorm - r3dm: 0.02 - (0.05 + 0.06) / 2
    for r in results:  # without the step asked, each t_env stands alone: nothing to compare
        del r["step"]
    assert comparisons(results) == []
