"""Like for like: the plug-in's HookedQLearner (which runs CDS, ACORM and R3DM) against the host's own
`q_learner` (which runs QMIX), both with the host's `basic_mac` + `rnn` agent, the host's QMIX mixer,
no intrinsic terms and the same initial weights, on one EpisodeBatch: the TD loss and every gradient
must agree. Run in its own process (`python -m tests.host_parity HOST [EPYMARL_PATH]`) because an EPyMARL
checkout's modules are top-level names; prints one JSON line.
"""
import json
import sys

import torch as th

from tests.harness import Episode, Recorder, build_learner, episode_batch, host_args


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


SHAPES = dict(T=8, N=3, obs=7, state=10, actions=5)  # a batch of 6 episodes of up to 8 steps (9 slots)


def batch_for(host, B=6, shapes=SHAPES):
    """Episodes of different lengths (padding and terminal masks matter), every one terminated."""
    T1, N, A, S = shapes["T"] + 1, shapes["N"], shapes["actions"], shapes["state"]
    g = th.Generator().manual_seed(0)
    avail = (th.rand(B, T1, N, A, generator=g) > 0.3).int()
    avail[..., 0] = 1
    actions = th.multinomial(avail.float().reshape(-1, A), 1, generator=g).reshape(B, T1, N, 1)
    episodes = []
    for b in range(B):
        n = T1 - 1 - b % 3
        state, obs = th.rand(n + 1, S, generator=g), th.rand(n + 1, N, shapes["obs"], generator=g)
        reward = th.randn(n + 1, 1, generator=g)[:n]  # drawn for n + 1 slots: the same stream as before
        episodes.append(Episode(state, obs, avail[b, :n + 1], actions[b, :n + 1], reward, terminated=True))
    return episode_batch(host, shapes, episodes)


def main(host_name, epymarl_path=None):
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.learners.q_learner import HookedQLearner
    from r3dm_epymarl.registry import register

    host = get_host(host_name, epymarl_path)
    register(host)
    batch = batch_for(host)
    args = host_args(host, "qmix", SHAPES, learner_log_interval=0,
                     standardise_rewards=False, standardise_returns=False, double_q=True, mixer="qmix",
                     learner="q_learner", mac="basic_mac", agent="rnn", obs_agent_id=True, obs_last_action=True,
                     lr=0.0,  # the optimiser steps change nothing: the gradients stay comparable after train()
                     lr_decay_interval=1000, lr_decay_rate=1.0, intrinsic_terms=[], precision="fp32")
    scheme, groups = batch.scheme, {"agents": SHAPES["N"]}
    host_learner = build_learner(host, args, batch, seed=0)  # the host's own q_learner and basic_mac
    plugin_mac = host_mac_with_unroll(host)(scheme, groups, args)
    plugin_learner = host.adapt("learners", HookedQLearner)(plugin_mac, scheme, Recorder(), args)
    # The same initial weights everywhere (online and target).
    plugin_mac.load_state(host_learner.mac)
    plugin_learner.target_mac.load_state(host_learner.target_mac)
    plugin_learner.mixer.load_state_dict(host_learner.mixer.state_dict())
    plugin_learner.target_mixer.load_state_dict(host_learner.target_mixer.state_dict())

    host_learner.train(batch, 0, 0)
    plugin_learner.train(batch, 0, 0)
    host_stats, plugin_stats = host_learner.logger.stats, plugin_learner.logger.stats
    (_, host_loss), = host_stats.get("loss_td", host_stats.get("loss"))
    (_, plugin_loss), = plugin_stats["loss_td"]
    pairs = [(a.grad, b.grad) for a, b in zip([*host_learner.mac.parameters(), *host_learner.mixer.parameters()],
                                              [*plugin_mac.parameters(), *plugin_learner.mixer.parameters()])]
    grad_diff = max((a - b).abs().max().item() for a, b in pairs)
    grad_scale = max(a.abs().max().item() for a, _ in pairs)
    print(json.dumps({"host": host.name, "host_loss": host_loss, "plugin_loss": plugin_loss,
                      "max_grad_diff": grad_diff, "max_grad": grad_scale, "n_tensors": len(pairs)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
