"""Strict, typed views of EPyMARL's `args` namespace.

The published R3DM code parsed booleans with `type=bool`, so "False" meant True. Here every key an
algorithm reads is declared with a type, and a wrong type stops the run before training starts,
naming the key and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r3dm_epymarl.errors import ConfigError


REQUIRED = object()  # Key.default of a key that every config must set


@dataclass(frozen=True)
class Key:
    type: type  # bool, int, float or str
    doc: str
    choices: tuple | dict | None = None  # a dict: its keys, read when checked (a live registry)
    minimum: float | None = None
    nullable: bool = False
    maximum: float | None = None
    above: float | None = None  # an exclusive lower bound (value > above)
    default: Any = REQUIRED  # what a config without the key gets (e.g. an intrinsic term added to any learner)


def _type_ok(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def check_key(name: str, value: Any, key: Key, where: str) -> None:
    if value is None and key.nullable:
        return
    if not _type_ok(value, key.type):
        type_name = "number" if key.type is float else key.type.__name__  # an int is a float here too
        hint = "true or false (unquoted)" if key.type is bool else f"a {type_name}"
        raise ConfigError(f"{where}: config key '{name}' must be {hint}, got {value!r} "
                          f"({type(value).__name__}); set {name}=<{type_name}> in the YAML or after `with`")
    if key.choices is not None and key.type is list:
        unknown = [item for item in value if item not in key.choices]
        if unknown:
            raise ConfigError(f"{where}: config key '{name}' names {unknown[0]!r}; choose from {list(key.choices)}, "
                              f"e.g. {name}='{list(key.choices)[:2]}' after `with`")
    elif key.choices is not None and value not in key.choices:
        raise ConfigError(f"{where}: config key '{name}' is {value!r}; choose one of {list(key.choices)}")
    if key.minimum is not None and value < key.minimum:
        raise ConfigError(f"{where}: config key '{name}' is {value!r}; it must be >= {key.minimum}")
    if key.above is not None and value <= key.above:
        raise ConfigError(f"{where}: config key '{name}' is {value!r}; it must be > {key.above}")
    if key.maximum is not None and value > key.maximum:
        raise ConfigError(f"{where}: config key '{name}' is {value!r}; it must be <= {key.maximum}")


def validate(config, schema: dict[str, Key], where: str, fill_defaults: bool = False) -> None:
    """Check `config` (a dict or an args namespace) against `schema`; raise ConfigError on the first bad key.

    A missing key with a declared default passes (with `fill_defaults`, it is set to that default, so
    the code reads `args.key` and never guesses); a missing key without one is an error."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    missing = object()
    for name, key in schema.items():
        value = get(name, missing)
        if value is missing and key.default is not REQUIRED:
            if fill_defaults:
                if isinstance(config, dict):
                    config[name] = key.default
                else:
                    setattr(config, name, key.default)
            continue
        if value is missing:
            raise ConfigError(f"{where}: config key '{name}' is missing ({key.doc}); add it to the algs YAML")
        check_key(name, value, key, where)


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested config dicts as Sacred's dotted keys: {"env_args": {"map_name": "3m"}} -> {"env_args.map_name": "3m"}."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
