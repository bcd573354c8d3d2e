"""The plug-in's controllers under the parallel runner (issue #36 item 2): `batch_size_run` envs in one
batch, stepped together, an env dropping out when its episode ends (`bs` = the envs still running), as
the hosts' ParallelRunner calls them. Each env keeps its own hidden states (agent and role network), so
what an agent computes in env b is what it computes with env b alone, and what the learner's whole-episode
unroll computes from the stored batch. Over the registry."""
import pytest
import torch as th

from r3dm_epymarl.registry import ALGORITHMS
from tests.update_probes import LENGTHS, SHAPES, build, host, make_batch


@pytest.fixture(scope="module")
def zoo(zoo_available):
    return host()


def _act(mac, batch, lengths, envs):
    """Step `envs` (indices into batch) as the parallel runner does: `select_actions` on the whole batch
    with `bs` = the envs still running. Returns the Q-values the agents computed, [len(envs), T, N, A],
    for the steps each env acted in (zeros after its end: the final observation's step acts too)."""
    sub = batch[envs[0]:envs[0] + 1] if len(envs) == 1 else batch
    T = sub.max_seq_length
    q = th.zeros(len(envs), T, SHAPES["N"], SHAPES["actions"])
    computed = []
    forward = mac.forward
    mac.forward = lambda *a, **k: computed.append(forward(*a, **k)) or computed[-1]  # record, change nothing
    try:
        mac.init_hidden(batch_size=len(envs))
        with th.no_grad():
            for t in range(T):
                running = [i for i, b in enumerate(envs) if t <= lengths[b]]
                if not running:
                    break
                mac.select_actions(sub, t, t_env=0, bs=running, test_mode=True)
                for i in running:
                    q[i, t] = computed[-1][i]
    finally:
        del mac.forward  # the instance attribute: back to the class's method
    return q


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_each_env_of_a_parallel_batch_keeps_its_own_state(zoo, algorithm):
    batch = make_batch(zoo)
    learner, _ = build(zoo, algorithm, batch)
    mac = learner.mac
    envs = list(range(batch.batch_size))
    together = _act(mac, batch, LENGTHS, envs)
    for b in envs:
        alone = _act(mac, batch, LENGTHS, [b])
        th.testing.assert_close(together[b], alone[0], rtol=1e-5, atol=1e-6)
    # What the learner unrolls from the stored batch is what the agents computed while acting (the
    # host's BasicMAC, R3DM-QMIX's, is stepped by its learner as while acting: checked above).
    if not hasattr(mac, "unroll"):
        return
    with th.no_grad():
        unrolled = mac.unroll(batch).q  # [B, T, N, A]
    for b, n in enumerate(LENGTHS):
        steps = n + 1
        th.testing.assert_close(together[b, :steps], unrolled[b, :steps], rtol=1e-4, atol=1e-5)
