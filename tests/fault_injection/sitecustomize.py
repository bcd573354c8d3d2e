"""Fault injection for the tests, out of the package: a real SIGKILL, or a wait for a signal, at a chosen
step of a run's hooked loop. Loaded by Python at start-up in every process whose PYTHONPATH holds this
folder (tests/faults.py sets it with the variables), and inert unless one of them is set:

- R3DM_EPYMARL_KILL_AT_T=N: SIGKILL at the end of the first loop iteration with t_env >= N;
- R3DM_EPYMARL_KILL_IN_SAVE_AT_T=N: SIGKILL inside the first checkpoint at t_env >= N, after its run
  state is written and before its manifest (a save cut short);
- R3DM_EPYMARL_WAIT_AT_T=N: at the end of the first iteration with t_env >= N, wait (up to 5 min) until a
  stop signal arrives, saying "waiting for a signal at t_env N", so a test's signal lands mid-run
  however fast the machine is. A run resumed at or past N (a requeued job, which keeps its environment)
  does not wait again;
- R3DM_EPYMARL_FAIL_SEED=N: a run with seed N raises an error at the end of its first iteration (one
  failing cell in a grid whose commands all pass the checks made before it starts).
"""
import os

KILL_AT_T, KILL_IN_SAVE_AT_T, WAIT_AT_T, FAIL_SEED = (
    "R3DM_EPYMARL_KILL_AT_T", "R3DM_EPYMARL_KILL_IN_SAVE_AT_T", "R3DM_EPYMARL_WAIT_AT_T", "R3DM_EPYMARL_FAIL_SEED")


def _install() -> None:
    import signal
    import time

    from r3dm_epymarl.runs import loop
    from r3dm_epymarl.runs.interrupt import STOP

    kill_at, kill_in_save, wait_at, fail_seed = (
        os.environ.get(v) for v in (KILL_AT_T, KILL_IN_SAVE_AT_T, WAIT_AT_T, FAIL_SEED))
    end_of_iteration = loop.RunHooks.end_of_iteration
    waited, first = [], []

    def end_of_iteration_with_faults(self, ns):
        t_env = ns["runner"].t_env
        if fail_seed and int(ns["args"].seed) == int(fail_seed):
            raise RuntimeError(f"injected failure for seed {fail_seed} (R3DM_EPYMARL_FAIL_SEED)")
        if not first:
            first.append(t_env)  # this process's first iteration (a resumed run starts late)
        if wait_at and t_env >= int(wait_at) and not waited and first[0] < int(wait_at):
            waited.append(t_env)
            ns["logger"].console_logger.info(f"waiting for a signal at t_env {t_env}")
            deadline = time.monotonic() + 300
            while STOP.signum is None and time.monotonic() < deadline:
                time.sleep(0.05)
        end_of_iteration(self, ns)  # saves this step, then acts on the signal
        if kill_at and t_env >= int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    loop.RunHooks.end_of_iteration = end_of_iteration_with_faults
    if kill_in_save:
        write_manifest = loop.checkpoints.write_manifest

        def write_manifest_or_die(folder, manifest, *args, **kwargs):
            if int(manifest.get("t_env", -1)) >= int(kill_in_save):
                os.kill(os.getpid(), signal.SIGKILL)  # the run state is on disk, the manifest is not
            return write_manifest(folder, manifest, *args, **kwargs)

        loop.checkpoints.write_manifest = write_manifest_or_die


if any(os.environ.get(v) for v in (KILL_AT_T, KILL_IN_SAVE_AT_T, WAIT_AT_T, FAIL_SEED)):
    _install()
