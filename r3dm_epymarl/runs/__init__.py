"""Long runs: exact resume through the host's own run loop, checkpoint manifests, live progress.

- `loop`: hooks the host's `run_sequential` (its own code, four counters and three calls added).
- `state`: what a checkpoint adds to the learner's files (buffer, RNG streams, env key, counters).
- `checkpoints`: the manifest (`checkpoint.json`), atomic writes, finding the newest usable checkpoint.
- `interrupt`: SIGTERM (Slurm preemption) and Ctrl-C: a checkpoint at the end of the iteration, metrics
  flushed, the Sacred run INTERRUPTED, one line with the command that resumes it.
- `progress`: the live t_env / t_max line of `run`, `demo` and `compare`.
"""
