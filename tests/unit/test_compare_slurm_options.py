"""compare --backend slurm's input, before anything is submitted: Slurm's time formats, the sbatch
options submitit gets, and Slurm options given to another backend."""
import argparse

import pytest

from r3dm_epymarl.errors import UserError
from r3dm_epymarl.experiments import compare
from r3dm_epymarl.experiments.compare_slurm import check_options, extra_sbatch, parse_time, sbatch_parameters


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 2), ("4:00:00", 240), ("0:00:59", 1),
                                           ("1-12", 2160), ("1-12:30", 2190), ("2-00:00:00", 2880)])
def test_slurm_time_formats_in_minutes_rounded_up(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["0", "ten", "1:2:3:4", "-5", "1-", "4h"])
def test_what_is_not_a_slurm_time_limit(text):
    with pytest.raises(ValueError):
        parse_time(text)


def _args(*argv):
    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return parser.parse_args(["--algorithms", "acorm", "--maps", "3m", *argv])


def test_the_sbatch_options_submitit_gets():
    args = _args("--backend", "slurm", "--dry-run", "--partition", "gpu", "--time", "1-00:00:00", "--gpus", "2",
                 "--cpus-per-cell", "4", "--mem", "16G", "--qos", "high", "--array-parallelism", "3",
                 "--sbatch", "constraint=a100", "exclusive")
    check_options(args)
    assert sbatch_parameters(args, "grid") == {
        "time": 1440, "cpus_per_task": 4, "nodes": 1, "ntasks_per_node": 1, "job_name": "grid", "signal_delay_s": 120,
        "additional_parameters": {"requeue": True, "constraint": "a100", "exclusive": True},
        "partition": "gpu", "mem": "16G", "qos": "high", "array_parallelism": 3, "gpus_per_node": 2}
    assert extra_sbatch(["--exclude=node7"]) == {"exclude": "node7"}


@pytest.mark.parametrize("argv, option", [(["--partition", "gpu"], "--partition"), (["--time", "10"], "--time"),
                                          (["--gpus", "1"], "--gpus"), (["--wait"], "--wait"),
                                          (["--backend", "ray", "--mem", "8G"], "--mem")])
def test_slurm_options_with_another_backend_are_refused(argv, option):
    with pytest.raises(UserError, match=rf"^{option} is for --backend slurm \(the (local|ray) backend"):
        check_options(_args(*argv))
