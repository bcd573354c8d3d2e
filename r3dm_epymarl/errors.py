"""Errors a user can fix: the CLI prints them as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input or a missing install; the message names the key or command and the fix."""


class ConfigError(UserError, ValueError):
    """A config key with a bad value or type."""
