"""`losses()` computes and steps nothing: the terms' own training is the explicit `train_terms` phase of
`train()`. Checked on every registered learner with terms, through the host's registries."""
from __future__ import annotations

import copy

import pytest
import torch as th

from r3dm_epymarl.registry import ALGORITHMS
from tests import harness

SHAPES = dict(B=4, T=8, N=3, obs=6, state=7, actions=5)
TINY = dict(hidden_dim=16, traj_embed_dim=16, role_embed_dim=8, att_embed_dim=16, att_out_dim=8, mixing_embed_dim=8,
            hypernet_embed=16, wm_hidden=32, wm_deter=32, wm_stoch=4, wm_classes=4, cds_predictor_hidden=16,
            cds_predictor_batch=16, pretrain_encoder_steps=0, pretrain_contrastive_steps=0)
WITH_TERMS = [name for name, a in ALGORITHMS.items() if harness.algorithm_config(name).get("intrinsic_terms")]


def learner_and_batch(name):
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.registry import register

    host = get_host("pymarlzooplus")
    register(host)
    config = harness.algorithm_config(name, host)
    args = harness.host_args(host, name, SHAPES, **{k: v for k, v in TINY.items() if k in config})
    batch = harness.host_batch(host, SHAPES, [8, 5, 7, 3], [False, True, True, True], seed=0)
    return harness.build_learner(host, args, batch, seed=0), batch


def snapshot(learner):
    return copy.deepcopy(learner._checkpoint())


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, th.Tensor):
        return th.equal(a, b)
    return a == b


@pytest.mark.parametrize("name", WITH_TERMS)
def test_losses_step_nothing_and_train_terms_trains_only_the_terms(name):
    learner, batch = learner_and_batch(name)
    assert learner.intrinsic, name
    before = snapshot(learner)
    losses, _ = learner.losses(batch, 0)
    assert th.isfinite(losses["loss_td"]) and losses["loss_td"] > 0
    assert same(snapshot(learner), before), "losses() changed the learner's state"
    learner.train_terms(learner.update_context(batch, learner.mac.unroll(batch), 0))
    after = snapshot(learner)
    assert not same(after["modules"]["intrinsic"], before["modules"]["intrinsic"]), "the terms trained"
    for name_, state in before["modules"].items():
        if name_ != "intrinsic":
            assert same(after["modules"][name_], state), name_
    assert same(after["optimisers"], before["optimisers"])
