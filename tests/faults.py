"""The environment that turns on tests/fault_injection (a kill or a wait at a chosen step of a run):
`faults(KILL_AT_T=600)` -> the variable, plus PYTHONPATH holding that folder, for the run's process and
the processes it starts (compare's cells)."""
from __future__ import annotations

import os
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "fault_injection"
KILL_AT_T, KILL_IN_SAVE_AT_T, WAIT_AT_T, FAIL_SEED = (
    "R3DM_EPYMARL_KILL_AT_T", "R3DM_EPYMARL_KILL_IN_SAVE_AT_T", "R3DM_EPYMARL_WAIT_AT_T", "R3DM_EPYMARL_FAIL_SEED")


def faults(**steps: int) -> dict:
    names = {"KILL_AT_T": KILL_AT_T, "KILL_IN_SAVE_AT_T": KILL_IN_SAVE_AT_T, "WAIT_AT_T": WAIT_AT_T,
             "FAIL_SEED": FAIL_SEED}
    path = os.pathsep.join(p for p in (str(FOLDER), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, **{names[k]: str(v) for k, v in steps.items()}}
