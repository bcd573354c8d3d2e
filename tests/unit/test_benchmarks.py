"""The benchmarks' parts that run in this process: the recorded SMAX episode lengths and their padding,
throughput.py's padded variants (the scripts themselves run in tests/integration/test_benchmarks.py)."""
from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import episode_lengths  # noqa: E402


def test_padding_fraction_of_known_batches():
    # batch 1: 2 episodes padded to 10 steps (20 slots, 15 steps); batch 2: 3 padded to 4 (12 slots, 10 steps)
    assert episode_lengths.padding_fraction([[10, 5], [4, 4, 2]]) == pytest.approx(1 - 25 / 32)
    assert episode_lengths.padding_fraction([[7, 7, 7]]) == 0.0


def test_harness_batch_is_filled_and_padded_as_the_host_runner_does():
    """Episodes of 3 (terminated) and 5 (timed out) steps: 6 slots (5 steps + the final obs), and the
    learner's TD mask keeps exactly the 8 real steps of 10, the padding fraction's complement."""
    pytest.importorskip("pymarlzooplus")
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.learners.q_learner import td_mask
    from tests.harness import host_batch

    shapes = dict(B=2, T=120, N=3, obs=4, state=6, actions=5)
    batch = host_batch(get_host("pymarlzooplus"), shapes, [3, 5], [True, False])
    assert batch.max_seq_length == 6
    assert batch["filled"][..., 0].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch["terminated"][..., 0].tolist() == [[0, 0, 1, 0, 0, 0], [0] * 6]
    assert batch["obs"][0, 4:].abs().sum() == 0 and batch["obs"][0, 3].abs().sum() > 0
    assert batch["avail_actions"][0, 4:].sum() == 0 and batch["actions_onehot"][0, 4:].sum() == 0
    assert batch["reward"][0, 3:].abs().sum() == 0 and batch["reward"][0, :3].abs().sum() > 0
    _, mask = td_mask(batch)
    assert mask.sum().item() == 8 and mask.numel() == 10
    assert 1 - mask.mean().item() == pytest.approx(episode_lengths.padding_fraction([[3, 5]]))


def test_recorded_smax_lengths_have_both_phases_with_more_padding_early():
    from r3dm_epymarl.envs.smax import EPISODE_LIMITS

    entry = json.loads(episode_lengths.DATA.read_text())["2s3z"]
    limit = entry["episode_limit"]
    assert limit == EPISODE_LIMITS["2s3z"] and entry["n_agents"] == 5
    padding = {}
    for name in episode_lengths.PHASES:
        phase = entry["phases"][name]
        lengths, terminated = phase["lengths"], phase["terminated"]
        assert len(lengths) == len(terminated) == phase["episodes"] >= 200
        assert all(1 <= n <= limit for n in lengths)
        assert all(n == limit for n, t in zip(lengths, terminated) if not t)  # a time-out lasts the limit
        assert phase["mean_length"] == pytest.approx(sum(lengths) / len(lengths))
        batches = [episode_lengths.sample(phase, 32, seed)[0] for seed in range(200)]
        padding[name] = episode_lengths.padding_fraction(batches)
    # random actions: a few long wandering episodes in most batches; the heuristic: longer, tighter battles
    assert 0.35 < padding["early"] < 0.5 and 0.25 < padding["late"] < 0.4, padding
    assert padding["early"] > padding["late"] + 0.05, padding


def test_recorded_smax_shapes_are_the_live_envs():
    pytest.importorskip("jaxmarl")
    from r3dm_epymarl.envs.smax import SMAXEnv

    entry = json.loads(episode_lengths.DATA.read_text())["2s3z"]
    info = SMAXEnv(map_name="2s3z", seed=0).get_env_info()
    assert (info["n_agents"], info["obs_shape"], info["state_shape"], info["n_actions"], info["episode_limit"]) == (
        entry["n_agents"], entry["obs"], entry["state"], entry["actions"], entry["episode_limit"])


def test_throughput_padded_variant_passes_the_key_to_the_child():
    import throughput
    assert throughput.split_variant("r3dm-padded") == ("r3dm", ["wm_skip_padding=False"])
    assert throughput.split_variant("acorm") == ("acorm", [])
    with pytest.raises(SystemExit, match="no wm_skip_padding key"):
        throughput.split_variant("acorm-padded")


def test_learner_update_times_each_part_through_the_probe_and_takes_it_off_after():
    pytest.importorskip("pymarlzooplus")
    import learner_update
    from r3dm_epymarl.hosts import get_host
    from r3dm_epymarl.registry import register
    from tests.harness import host_batch

    host = get_host("pymarlzooplus")
    register(host)
    shapes = dict(B=2, T=6, N=3, obs=4, state=6, actions=5)
    batch = host_batch(host, shapes, [6, 4], [True, False])
    cds, qmix = (learner_update.build(host, name, shapes, batch).learner for name in ("cds", "qmix"))
    parts = learner_update.PartTimes("cpu")
    with learner_update.probing(cds, parts), learner_update.probing(qmix, parts):
        assert cds.profile_part is parts and not hasattr(qmix, "profile_part")  # the host's QMIX has no parts
        cds.train(batch, 0, 0)
        qmix.train(batch, 0, 0)
        first = parts.take()
        cds.train(batch, 1, 1)
        second = parts.take()
    assert set(first) == set(second) == {"cds update", "cds reward"}
    assert all(ms > 0 for ms in [*first.values(), *second.values()])
    assert "profile_part" not in vars(cds)  # the class's no-op again
