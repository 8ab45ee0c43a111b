"""The one error a run stops with when the user can act on it."""

from __future__ import annotations


class RunError(RuntimeError):
    """A run stopped for a reason the user can act on; `exit_code` is what the CLI returns."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
