"""W&B runs that survive a resume and a stop (`use_wandb=True`, the host's own logger).

Left alone, the hosts' W&B logging breaks a long run in two places:
- a resumed run calls `wandb.init` afresh: a new W&B run, in a new group (the hosts name the group by a
  hash of the config, which now holds `checkpoint_path`), so one cell's curve is split in two;
- on SIGTERM or Ctrl-C the host's `logger.finish()` is never reached: the values the logger gathers
  for the current step are never sent and the W&B run is never finished.

So every checkpoint's manifest keeps the W&B run (id, group, project, entity) it was logging to, and a
run resumed from that checkpoint opens the same W&B run again (`id=..., resume="allow"`, the same
group) through a wrapper around `wandb.init` that is installed only for that run; and a stop finishes
the host's logger (sending what it holds) before the run ends INTERRUPTED.
"""
from __future__ import annotations

import sys
from pathlib import Path

from r3dm_epymarl.runs import checkpoints


def run_record(logger) -> dict | None:
    """The W&B run the host's logger writes to, for the manifest; None without W&B."""
    run = getattr(logger, "wandb", None) if getattr(logger, "use_wandb", False) else None
    if run is None:
        return None
    return {"id": run.id, "group": run.group, "project": run.project, "entity": run.entity}


def finish(logger) -> None:
    """What the host does after its loop: send the gathered values and finish the W&B run."""
    if getattr(logger, "use_wandb", False) and hasattr(logger, "finish"):
        try:
            logger.finish()
        except Exception as exc:  # the run's own stop must not be hidden by a logging failure
            print(f"r3dm-epymarl: finishing the W&B run failed ({type(exc).__name__}: {exc})", file=sys.stderr)


def _resumed_record(config: dict, cwd: str | None) -> dict | None:
    """The W&B run saved with the checkpoint this run will load (the loop's rule: a named <t_env>/
    folder, else the intact one nearest load_step, else the newest); None if none was saved."""
    path = config.get("checkpoint_path") or ""
    if not path or config.get("evaluate"):
        return None
    folder = Path(cwd or ".") / path
    if folder.name.isdigit() and (folder / checkpoints.MANIFEST).is_file():
        chosen = (folder, None)
    else:
        chosen = checkpoints.newest_usable(folder, report=lambda line: None,
                                           near=int(config.get("load_step") or 0))
    if chosen is None:
        return None
    try:
        manifest = checkpoints.read_manifest(chosen[0])
    except ValueError:
        return None
    return manifest.get("wandb")


def continue_run(config: dict, cwd: str | None = None) -> dict | None:
    """Before the host starts: if this run resumes a checkpoint that logged to W&B, make the host's
    `wandb.init` reopen that run. Returns the record used (None: nothing installed)."""
    if not config.get("use_wandb"):
        return None
    record = _resumed_record(config, cwd)
    if not record:
        return None
    import wandb

    original = wandb.init

    def init(*args, **kwargs):
        kwargs.update(id=record["id"], resume="allow")
        if record.get("group"):
            kwargs["group"] = record["group"]
        wandb.init = original  # once: this run's logger only
        return original(*args, **kwargs)

    wandb.init = init
    print(f"r3dm-epymarl: W&B: continuing run {record['id']} (group {record.get('group')})", file=sys.stderr)
    return record
