"""Like for like: the plug-in's HookedQLearner (which runs CDS, ACORM and R3DM) against the host's own
`q_learner` (which runs QMIX), both with the host's `basic_mac` + `rnn` agent, the host's QMIX mixer,
no intrinsic terms and the same initial weights, on one EpisodeBatch: the TD loss and every gradient
must agree. Run in its own process (`python -m tests.host_parity HOST [EPYMARL_PATH]`) because an EPyMARL
checkout's modules are top-level names; prints one JSON line.
"""
import json
import sys
from types import SimpleNamespace

import torch as th
import yaml


class Recorder:
    def __init__(self):
        self.stats = {}

    def log_stat(self, key, value, t, to_sacred=True):
        self.stats[key] = value


def host_mac_with_unroll(host):
    """The host's own BasicMAC plus the whole-episode interface the plug-in learner calls; the unroll is
    the host learner's own loop (init_hidden, then forward at t = 0..T-1)."""
    from r3dm_epymarl.controllers.base import Unroll

    BasicMAC = host.registry("controllers")["basic_mac"]

    class HostMAC(BasicMAC):
        def __init__(self, scheme, groups, args):
            super().__init__(scheme, groups, args)
            self.obs_dim = scheme["obs"]["vshape"]  # what the learner hands the (here: no) intrinsic terms

        def unroll(self, batch):
            self.init_hidden(batch.batch_size)
            return Unroll(th.stack([self.forward(batch, t=t) for t in range(batch.max_seq_length)], 1), {})

        def unroll_target(self, batch, online):
            return self.unroll(batch)

        def networks(self):
            return {"agent": self.agent}

        def target_networks(self):
            return self.networks()

    return HostMAC


def batch_for(host, B=6, T=9, N=3, obs=7, A=5, S=10):
    EpisodeBatch = host.module("components.episode_buffer").EpisodeBatch
    OneHot = host.module("components.transforms").OneHot
    scheme = {"state": {"vshape": S}, "obs": {"vshape": obs, "group": "agents"},
              "actions": {"vshape": (1,), "group": "agents", "dtype": th.long},
              "avail_actions": {"vshape": (A,), "group": "agents", "dtype": th.int},
              "reward": {"vshape": (1,)}, "terminated": {"vshape": (1,), "dtype": th.uint8}}
    groups = {"agents": N}
    batch = EpisodeBatch(scheme, groups, B, T, preprocess={"actions": ("actions_onehot", [OneHot(out_dim=A)])},
                         device="cpu")
    g = th.Generator().manual_seed(0)
    avail = (th.rand(B, T, N, A, generator=g) > 0.3).int()
    avail[..., 0] = 1
    actions = th.multinomial(avail.float().reshape(-1, A), 1, generator=g).reshape(B, T, N, 1)
    for b in range(B):  # episodes of different lengths: padding and terminal masks matter
        n = T - 1 - b % 3
        batch.update({"state": th.rand(n + 1, S, generator=g), "obs": th.rand(n + 1, N, obs, generator=g),
                      "actions": actions[b, :n + 1], "avail_actions": avail[b, :n + 1],
                      "reward": th.randn(n + 1, 1, generator=g),
                      "terminated": (th.arange(n + 1) == n - 1).to(th.uint8).unsqueeze(-1)},
                     bs=slice(b, b + 1), ts=slice(0, n + 1))
    return batch, groups


def main(host_name, epymarl_path=None):
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.learners.q_learner import HookedQLearner
    from r3dm_epymarl.registry import register

    host = get_host(host_name, epymarl_path)
    register(host)
    batch, groups = batch_for(host)
    config = yaml.safe_load((host.config_dir / "default.yaml").read_text())
    config.update(yaml.safe_load((host.config_dir / "algs" / "qmix.yaml").read_text()))
    N, A = groups["agents"], batch["avail_actions"].shape[-1]
    config.update(n_agents=N, n_actions=A, state_shape=batch["state"].shape[-1], obs_shape=batch["obs"].shape[-1],
                  seed=1, use_cuda=False, device="cpu", common_reward=True, learner_log_interval=0,
                  standardise_rewards=False, standardise_returns=False, double_q=True, mixer="qmix",
                  mac="basic_mac", agent="rnn", obs_agent_id=True, obs_last_action=True,
                  lr=0.0,  # the optimiser steps change nothing: the gradients stay comparable after train()
                  lr_decay_interval=1000, lr_decay_rate=1.0, intrinsic_terms=[], precision="fp32")
    args = SimpleNamespace(**config)
    scheme = batch.scheme
    th.manual_seed(0)
    host_learner = host.registry("learners")["q_learner"](
        host.registry("controllers")["basic_mac"](scheme, groups, args), scheme, Recorder(), args)
    plugin_mac = host_mac_with_unroll(host)(scheme, groups, args)
    plugin_learner = host.adapt("learners", HookedQLearner)(plugin_mac, scheme, Recorder(), args)
    # The same initial weights everywhere (online and target).
    plugin_mac.load_state(host_learner.mac)
    plugin_learner.target_mac.load_state(host_learner.target_mac)
    plugin_learner.mixer.load_state_dict(host_learner.mixer.state_dict())
    plugin_learner.target_mixer.load_state_dict(host_learner.target_mixer.state_dict())

    host_learner.train(batch, 0, 0)
    plugin_learner.train(batch, 0, 0)
    host_loss = host_learner.logger.stats.get("loss_td", host_learner.logger.stats.get("loss"))
    plugin_loss = plugin_learner.logger.stats["loss_td"]
    pairs = [(a.grad, b.grad) for a, b in zip([*host_learner.mac.parameters(), *host_learner.mixer.parameters()],
                                              [*plugin_mac.parameters(), *plugin_learner.mixer.parameters()])]
    grad_diff = max((a - b).abs().max().item() for a, b in pairs)
    grad_scale = max(a.abs().max().item() for a, _ in pairs)
    print(json.dumps({"host": host.name, "host_loss": host_loss, "plugin_loss": plugin_loss,
                      "max_grad_diff": grad_diff, "max_grad": grad_scale, "n_tensors": len(pairs)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
