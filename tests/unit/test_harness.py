"""The shared harness (tests/harness.py: args and learners; its batches are checked in test_benchmarks.py)
and the learner's `profile_part` probe that the benchmark splits an update with."""
import contextlib

import pytest
import torch as th

from r3dm_epymarl.learners.q_learner import HookedQLearner
from tests import harness
from tests.synthetic import build_learner, make_batch

SHAPES = dict(T=120, N=3, obs=4, state=6, actions=5)


@pytest.fixture(scope="module")
def zoo():
    pytest.importorskip("pymarlzooplus")
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.registry import register

    host = get_host("pymarlzooplus")
    register(host)
    return host


def test_host_args_are_the_yaml_the_launcher_picks_with_the_env_sizes(zoo):
    args = harness.host_args(zoo, "r3dm", SHAPES, lr=0.5)
    assert args.learner == "r3dm_learner" and args.intrinsic_terms == ["policy_kl", "world_model"]  # plug-in YAML
    assert args.t_max == harness._read(zoo.config_dir / "default.yaml")["t_max"]  # under the host's defaults
    assert (args.n_agents, args.n_actions, args.state_shape, args.obs_shape) == (3, 5, 6, 4)
    assert args.lr == 0.5 and args.use_cuda is False and args.device == "cpu" and args.seed == 1
    assert harness.host_args(zoo, "qmix", SHAPES).learner == "q_learner"  # the host's own QMIX
    with pytest.raises(ValueError, match="unknown algorithm 'nope': neither pymarlzooplus nor the plug-in"):
        harness.host_args(zoo, "nope", SHAPES)


def test_build_learner_takes_the_host_registries_and_its_seed(zoo):
    batch = harness.host_batch(zoo, SHAPES, [3, 5], [True, False])
    first, second = (harness.build_learner(zoo, harness.host_args(zoo, "cds", SHAPES), batch, seed=3)
                     for _ in range(2))
    assert isinstance(first, HookedQLearner) and type(first).__name__ == type(second).__name__
    for a, b in zip(first.mac.parameters(), second.mac.parameters()):
        assert th.equal(a, b)


def test_profile_part_sees_each_terms_training_and_reward_and_changes_nothing():
    """A probe set on one of two identically seeded R3DM learners: it is entered around each term's
    training, then around each term's reward, in order, on every update; both learners train identically."""
    batch = make_batch()
    th.manual_seed(0)
    probed, _ = build_learner(batch, "r3dm")
    th.manual_seed(0)
    plain, _ = build_learner(batch, "r3dm")
    seen = []

    @contextlib.contextmanager
    def probe(part):
        seen.append(("enter", part, th.is_grad_enabled()))
        yield
        seen.append(("exit", part))

    probed.profile_part = probe
    for t in range(2):
        th.manual_seed(t)
        probed.train(batch, t, t)
        th.manual_seed(t)
        plain.train(batch, t, t)
    # every term trains first (train_terms), then the losses compute every reward
    parts = [("policy_kl update", True), ("world_model update", True),
             ("policy_kl reward", False), ("world_model reward", False)]
    assert seen == [e for part, grad in parts for e in (("enter", part, grad), ("exit", part))] * 2
    for a, b in zip([*probed.mac.parameters(), *probed.mixer.parameters()],
                    [*plain.mac.parameters(), *plain.mixer.parameters()]):
        assert th.equal(a, b)
    del probed.profile_part  # back to the class's no-op
    with probed.profile_part("anything") as entered:
        assert entered is None
