"""Every registered algorithm trains through a real PyMARLzoo+ run loop (runner, buffer, Sacred)."""
import math

import pytest

from r3dm_epymarl.registry import ALGORITHMS
from tests.conftest import metrics, zoo_train

ALGOS = list(ALGORITHMS)


def _loss_key(m: dict) -> str:
    return "loss_td" if "loss_td" in m else "loss"


@pytest.fixture(scope="module")
def trained(zoo_available, tmp_path_factory):
    """One short run per algorithm, shared by the tests below (runs cost ~20 s each)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = zoo_train(name, tmp_path_factory.mktemp(name), "save_model=True",
                                    "save_model_interval=150")
        return cache[name]

    return get


@pytest.mark.parametrize("algorithm", ALGOS)
def test_trains_and_logs(trained, algorithm):
    run_dir = trained(algorithm)
    m = metrics(run_dir)
    losses = m[_loss_key(m)]["values"]
    assert len(losses) >= 3, "several learner updates should have been logged"
    assert all(math.isfinite(v) for v in losses)
    assert m["test_return_mean"]["values"], "the host's test phase ran"
    assert max(m[_loss_key(m)]["steps"]) <= 350
    saved = sorted(p.name for p in (run_dir / "models").iterdir())
    assert saved, "save_model=True wrote checkpoints"


@pytest.mark.parametrize("algorithm", ALGOS)
def test_same_seed_same_losses(trained, algorithm, tmp_path):
    first = metrics(trained(algorithm))
    second = metrics(zoo_train(algorithm, tmp_path, "save_model=True", "save_model_interval=150"))
    key = _loss_key(first)
    assert first[key]["values"] == second[key]["values"]


@pytest.mark.parametrize("algorithm", ALGOS)
def test_resume_from_checkpoint(trained, algorithm, tmp_path):
    models = trained(algorithm) / "models"
    run_dir = zoo_train(algorithm, tmp_path, f"checkpoint_path={models}", "t_max=450")
    m = metrics(run_dir)
    steps = m[_loss_key(m)]["steps"]
    assert min(steps) > 150, "a resumed run continues from the checkpoint's step"
