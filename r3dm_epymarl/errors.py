"""Errors a user can fix: the CLI prints them as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input or a missing install; the message names the key or command and the fix."""


class ConfigError(UserError, ValueError):
    """A config key with a bad value or type."""


class TrainingDiverged(UserError, FloatingPointError):
    """A loss or reward term became NaN or inf; the message names the term."""


_SACRED_SHAPED: dict[type, type] = {}


def for_sacred(error: UserError) -> UserError:
    """The same error, shaped so that Sacred prints its message alone (no traceback) when it ends a
    host run; raise this from code that runs inside a host's Sacred experiment."""
    try:
        from sacred.utils import SacredError
    except ImportError:
        return error
    base = type(error)
    if base not in _SACRED_SHAPED:
        # SacredError.__init__ would set print_traceback=True on the instance (it runs whenever no
        # builtin base such as ValueError comes first in the MRO): skip it, keep the class attributes.
        _SACRED_SHAPED[base] = type(base.__name__, (base, SacredError), {
            "print_traceback": False, "print_usage": False, "filter_traceback": "default",
            "__init__": lambda self, *args: Exception.__init__(self, *args),
            "__module__": base.__module__})
    return _SACRED_SHAPED[base](*error.args)
