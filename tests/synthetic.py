"""Synthetic EpisodeBatch-like data and args for unit tests (no host needed); the host-side builders
are in tests/harness.py."""
from types import SimpleNamespace

import torch as th

from tests.harness import Recorder, algorithm_config, env_keys


class FakeBatch(dict):
    """What the plug-in reads from a host EpisodeBatch: items, batch_size, max_seq_length, device."""

    @property
    def batch_size(self):
        return self["obs"].shape[0]

    @property
    def max_seq_length(self):
        return self["obs"].shape[1]

    @property
    def device(self):
        return self["obs"].device


def make_batch(B=4, T=10, N=3, obs=6, A=5, S=8, seed=0, lengths=None) -> FakeBatch:
    g = th.Generator().manual_seed(seed)
    lengths = lengths or [T - 1 - (i % 3) for i in range(B)]  # steps per episode (<= T-1)
    filled = th.zeros(B, T, 1)
    terminated = th.zeros(B, T, 1, dtype=th.uint8)
    for b, n in enumerate(lengths):
        filled[b, : n + 1] = 1  # n transitions plus the final observation
        terminated[b, n - 1] = 1
    actions = th.randint(0, A, (B, T, N, 1), generator=g)
    avail = th.ones(B, T, N, A, dtype=th.int)
    avail[:, :, :, -1] = (th.rand(B, T, N, generator=g) > 0.5).int()  # last action sometimes unavailable
    actions = th.where(avail.gather(-1, actions) == 0, th.zeros_like(actions), actions)
    return FakeBatch(
        obs=th.randn(B, T, N, obs, generator=g) * filled.unsqueeze(-1),
        state=th.randn(B, T, S, generator=g),
        actions=actions,
        actions_onehot=th.nn.functional.one_hot(actions.squeeze(-1), A).float(),
        avail_actions=avail,
        reward=th.randn(B, T, 1, generator=g),
        terminated=terminated,
        filled=filled,
    )


def acorm_args(batch: FakeBatch, algorithm="acorm", **overrides) -> SimpleNamespace:
    """The algorithm's YAML, shrunk to tiny widths, for the synthetic batch's sizes."""
    config = algorithm_config(algorithm)
    shapes = dict(N=batch["obs"].shape[2], obs=batch["obs"].shape[-1], state=batch["state"].shape[-1],
                  actions=batch["avail_actions"].shape[-1])
    config.update(
        env_keys(shapes), seed=1, learner_log_interval=0, use_cuda=False,
        pretrain_encoder_steps=0, pretrain_contrastive_steps=0, contrastive_interval=1,
        traj_embed_dim=16, role_embed_dim=8, hidden_dim=16, att_embed_dim=16, att_out_dim=8,
        mixing_embed_dim=8, hypernet_embed=16,
    )
    config.update(overrides)
    return SimpleNamespace(**config)


class GreedySelector:
    def __init__(self, args):
        pass

    def select_action(self, q, avail, t_env, test_mode=False):
        return q.masked_fill(avail == 0, -1e9).argmax(-1)


class SumMixer(th.nn.Module):
    """VDN: stands in for the host's mixers in host-free unit tests."""

    def __init__(self, args):
        super().__init__()

    def forward(self, qs, states):
        return qs.sum(-1, keepdim=True)


def fake_registry():
    from r3dm_epymarl.modules.agents.cds_rnn import CDSRNNAgent
    from r3dm_epymarl.modules.agents.role_rnn import RoleRNNAgent
    from r3dm_epymarl.modules.mixers.attn_qmix import AttentionQMixer

    registries = {"agents": {"role_rnn": RoleRNNAgent, "cds_rnn": CDSRNNAgent},
                  "action_selectors": {"epsilon_greedy": GreedySelector, "r3dm_epsilon_greedy": GreedySelector},
                  "mixers": {"attn_qmix": AttentionQMixer, "qmix": SumMixer}}
    return registries.__getitem__


def build_learner(batch, algorithm="acorm", **overrides):
    """The algorithm's controller + learner bound to a fake host registry ("qmix" is a sum here)."""
    from r3dm_epymarl.registry import ALGORITHMS, COMPONENTS, _resolve

    registry = staticmethod(fake_registry())
    algo = ALGORITHMS[algorithm]
    mac_cls = type("MAC", (_resolve(COMPONENTS["controllers"][algo.mac]),), {"_host_registry": registry})
    base = _resolve(COMPONENTS["learners"][algo.learner])
    learner_cls = type("Learner", (base,), {"_host_registry": registry})
    args = acorm_args(batch, algorithm, **overrides)
    scheme = {"obs": {"vshape": batch["obs"].shape[-1]}}
    mac = mac_cls(scheme, None, args)
    logger = Recorder()
    return learner_cls(mac, scheme, logger, args), logger
