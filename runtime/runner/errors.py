"""Why a runner cannot start, and why a coordinator must stop writing. Stdlib only."""

from __future__ import annotations

from runtime.exit_codes import EXIT_ERROR


class RunnerError(Exception):
    """The runner cannot start; the message says why in one line."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


class OwnershipLost(Exception):
    """Another process took over the state file: this coordinator must stop writing."""


class StateWriteFailed(Exception):
    """The coordinator could not write the state file (disk full, I/O error, over the size limit)."""
