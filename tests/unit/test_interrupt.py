"""The signal handling of runs/interrupt.py without a host: what a signal does, and the line it ends in."""
import os
import signal

import pytest

from r3dm_epymarl.runs.interrupt import RunInterrupted, StopRequest, resume_argv


def test_the_resume_command_replaces_an_earlier_checkpoint_path_and_load_step():
    argv = ["run", "--config=acorm", "with", "seed=1", "checkpoint_path=/old", "load_step=400", "t_max=9"]
    assert resume_argv(argv, "/new models") == ["run", "--config=acorm", "with", "seed=1", "t_max=9",
                                                "checkpoint_path=/new models"]
    assert resume_argv(["run", "--config=qmix"], "/m") == ["run", "--config=qmix", "with", "checkpoint_path=/m"]


def test_the_line_says_where_the_run_stopped_and_how_to_resume_it():
    stop = RunInterrupted(signal.SIGTERM, t_env=1040, checkpoint="/r/models/a b", saved_now=True)
    stop.argv = ["run", "--config=acorm", "with", "seed=1"]
    line = stop.line(["r3dm-epymarl", *stop.argv])
    assert line == ("stopped by SIGTERM at t_env 1,040; checkpoint saved at this step, metrics saved, Sacred run "
                    "INTERRUPTED; resume with: r3dm-epymarl run --config=acorm with seed=1 "
                    "'checkpoint_path=/r/models/a b'")
    assert stop.exit_code == 143 and RunInterrupted(signal.SIGINT).exit_code == 130
    off = RunInterrupted(signal.SIGINT, t_env=50, save_model=False).line(["r3dm-epymarl", "run"])
    assert "not resumable (save_model is off)" in off and "save_model=True" in off
    assert "nothing to resume" in RunInterrupted(signal.SIGTERM).line(["r3dm-epymarl", "run"])


def test_a_signal_is_noted_for_a_safe_point_and_a_second_ctrl_c_raises_at_once():
    stop = StopRequest()
    previous = stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # handled in this thread before kill returns
        assert stop.signum == signal.SIGTERM  # noted, nothing raised
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM changes nothing
        with pytest.raises(RunInterrupted) as raised:
            stop.stop_if_asked()
        assert raised.value.signum == signal.SIGTERM and not raised.value.at_once
        with pytest.raises(RunInterrupted) as raised:
            os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C after a noted signal
        assert raised.value.at_once
    finally:
        stop.uninstall(previous)
    assert signal.getsignal(signal.SIGTERM) == previous[signal.SIGTERM]
