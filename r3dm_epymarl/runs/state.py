"""The run-loop state a checkpoint needs beyond the learner's own files, so that a resumed run continues
exactly as the uninterrupted one would have: the replay buffer, every RNG stream (python, numpy, torch,
the env's), the run loop's counters, and the plain attributes (step counters, pending stats) and torch
state (target networks, optimisers) of the runner, learner and controller.

Capture happens at the end of a run-loop iteration, restore just before the loop starts; both see the
loop's local variables as a dict (`ns`).
"""
from __future__ import annotations

import copy
import pickle
import random

import numpy as np
import torch as th
from torch import nn

# The host run loop's counters (EPyMARL and PyMARLzoo+ use the same names).
LOOP_COUNTERS = ("episode", "last_test_T", "last_log_T", "model_save_time")


def is_plain(value, depth: int = 0) -> bool:
    """Numbers, strings and containers of them: safe to copy and to restore by assignment."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if depth > 4:
        return False
    if isinstance(value, (list, tuple)):
        return all(is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and is_plain(v, depth + 1) for k, v in value.items())
    return False


def plain_attrs(obj) -> dict:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if is_plain(v)}


def inexact_parts(notes: dict) -> dict:
    """The notes of a checkpoint's parts that a resume cannot restore (not "saved ..." / "restored ...");
    a checkpoint is exact when there are none."""
    return {part: note for part, note in notes.items() if not str(note).startswith(("saved", "restored"))}


def set_attrs(obj, attrs: dict) -> None:
    for key, value in attrs.items():
        setattr(obj, key, value)


def _stateful(value) -> bool:
    return isinstance(value, (nn.Module, th.optim.Optimizer, th.optim.lr_scheduler.LRScheduler))


# Attributes that configure rather than hold state, or belong to another part of the loop.
_NOT_STATE = {"args", "logger", "scheme", "groups", "preprocess", "env", "runner", "buffer"}


def object_state(obj, depth: int = 2) -> dict:
    """Everything `obj` holds that training changes: modules, optimisers and schedulers (state_dicts),
    tensors, plain values, and the same for the helper objects it owns (a controller's agent, a
    running mean of rewards), `depth` levels down. The host's own learners save only the online
    networks and optimiser; target networks and reward statistics come back from here."""
    out = {"stateful": {}, "tensors": {}, "plain": {}, "children": {}}
    for name, value in vars(obj).items():
        if name in _NOT_STATE:
            continue
        if _stateful(value):
            out["stateful"][name] = value.state_dict()
        elif isinstance(value, th.Tensor):
            out["tensors"][name] = value.detach().clone()
        elif is_plain(value):
            out["plain"][name] = copy.deepcopy(value)
        elif depth > 0 and hasattr(value, "__dict__") and not isinstance(value, type) \
                and not callable(value) and type(value).__module__.split(".")[0] not in ("builtins", "types"):
            out["children"][name] = object_state(value, depth - 1)
    return out


def load_object_state(obj, saved: dict) -> None:
    for name, value in saved["stateful"].items():
        getattr(obj, name).load_state_dict(value)
    for name, value in saved["tensors"].items():
        current = getattr(obj, name)
        setattr(obj, name, value.to(current.device) if isinstance(current, th.Tensor) else value)
    set_attrs(obj, saved["plain"])
    for name, value in saved["children"].items():
        load_object_state(getattr(obj, name), value)


# --- RNG streams ----------------------------------------------------------------------------------------

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": th.get_rng_state()}
    if th.cuda.is_available() and th.cuda.is_initialized():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


# --- the env ------------------------------------------------------------------------------------------

def env_state(runner) -> tuple[dict | None, str]:
    """(state, how): what the env's next reset depends on, where it can be read. Episodes end before a
    checkpoint, so no mid-episode simulator state is needed; but a reset may depend on more than the
    random stream (LBF places each agent away from where the previous episode left the others), so a
    gymnasium env's attributes are kept with its generator."""
    env = getattr(runner, "env", None)
    if env is None:
        return None, "not restored: the parallel runner's envs live in subprocesses and restart from the seed"
    if hasattr(env, "get_rng_state"):  # the plug-in's SMAX env: its JAX key chain (a reset reads nothing else)
        return {"kind": "own", "state": env.get_rng_state()}, "restored (env key stream)"
    inner = getattr(getattr(env, "_env", None), "unwrapped", None)  # gymnasium envs behind gymma
    generator = getattr(inner, "_np_random", None)
    if generator is None:
        return None, f"not restored: {type(env).__name__} exposes no random state (StarCraft II keeps its own)"
    attrs = {k: v for k, v in vars(inner).items() if k != "_np_random"}
    try:
        attrs = pickle.loads(pickle.dumps(attrs))  # a copy the live env cannot change, and a savable one
    except Exception as exc:  # noqa: BLE001 - whatever the env holds that pickle cannot take
        return ({"kind": "gymnasium", "state": copy.deepcopy(generator.bit_generator.state), "attrs": None},
                f"partly restored: the gymnasium np_random only; {type(inner).__name__} holds state that cannot "
                f"be saved ({type(exc).__name__}: {str(exc)[:80]}), so its next reset may differ")
    return ({"kind": "gymnasium", "state": copy.deepcopy(generator.bit_generator.state), "attrs": attrs},
            "restored (gymnasium env: np_random and attributes)")


def set_env_state(runner, saved: dict | None) -> None:
    if saved is None:
        return
    if saved["kind"] == "own":
        runner.env.set_rng_state(saved["state"])
        return
    inner = runner.env._env.unwrapped
    if saved.get("attrs") is not None:
        for name, value in pickle.loads(pickle.dumps(saved["attrs"])).items():  # a copy: restorable again
            setattr(inner, name, value)
    inner._np_random.bit_generator.state = saved["state"]


# --- the replay buffer --------------------------------------------------------------------------------

def _stored_steps(filled: th.Tensor) -> th.Tensor:
    """[episodes, T] bool: the steps an episode wrote, i.e. the filled ones and the step after each
    (where the final observation, state and available actions go, with filled = 0)."""
    stored = filled.bool().clone()
    stored[:, 1:] |= filled[:, :-1].bool()
    return stored


def buffer_state(buffer) -> dict:
    """The filled episodes only ([:episodes_in_buffer]: a ring buffer fills from index 0), and of
    those only the steps they wrote (an episode of 50 steps in a 121-step slot stores 51): the padding
    is zeros in both the saved and the restored buffer."""
    n = buffer.episodes_in_buffer
    data = buffer.data
    stored = _stored_steps(data.transition_data["filled"][:n, :, 0])  # [n, T]
    return {"attrs": plain_attrs(buffer), "stored": stored,
            "transition_data": {k: v[:n][stored].clone() for k, v in data.transition_data.items()},  # [steps, ...]
            "episode_data": {k: v[:n].clone() for k, v in data.episode_data.items()}}


def set_buffer_state(buffer, saved: dict) -> None:
    set_attrs(buffer, saved["attrs"])
    stored = saved["stored"]
    n = stored.shape[0]
    for key, value in saved["transition_data"].items():
        target = buffer.data.transition_data[key]
        target[:n].zero_()
        target[:n][stored.to(target.device)] = value.to(target.device)
    for key, value in saved["episode_data"].items():
        buffer.data.episode_data[key][:n] = value.to(buffer.data.episode_data[key].device)


# --- all of it ----------------------------------------------------------------------------------------

def capture(ns: dict, with_buffer: bool = True) -> tuple[dict, dict]:
    """(state, notes) at the end of a run-loop iteration; `ns` is the loop's locals()."""
    runner, learner = ns["runner"], ns["learner"]
    env, env_note = env_state(runner)
    state = {
        "loop": {name: ns[name] for name in LOOP_COUNTERS},
        "rng": rng_state(),
        "env": env,
        "runner": plain_attrs(runner),
        "learner": object_state(learner),  # the controller (runner.mac is learner.mac) included
        "buffer": buffer_state(ns["buffer"]) if with_buffer else None,
    }
    notes = {"env_rng": env_note,
             "buffer": "saved" if with_buffer else "left out (R3DM_EPYMARL_CHECKPOINT_BUFFER=0): the resumed run "
                                                   "refills it, so it is not the uninterrupted run"}
    return state, notes


def restore(ns: dict, state: dict) -> None:
    """Put `state` back after the host loaded the learner's files (before the loop starts)."""
    runner, learner = ns["runner"], ns["learner"]
    set_attrs(runner, state["runner"])
    load_object_state(learner, state["learner"])
    if state["buffer"] is not None:
        set_buffer_state(ns["buffer"], state["buffer"])
    set_env_state(runner, state["env"])
    set_rng_state(state["rng"])  # last: nothing above may draw from the restored streams
