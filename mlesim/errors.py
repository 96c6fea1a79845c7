"""Errors that mlesim reports to the user as one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that mlesim cannot use.

    Parameters
    ----------
    key : str
        Dotted configuration key at fault, e.g. ``truth.params.sigma2``.
    message : str
        What is wrong and what is allowed, e.g. ``"must be > 0, got -1"``.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def __reduce__(self):
        """Rebuild from (key, message): the error crosses process boundaries (helper
        processes, dask workers) intact, subclasses included."""
        return (type(self), (self.key, self.message))
