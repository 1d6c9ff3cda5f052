"""Exit codes, one table for the ``expwatch`` command, the runner and its workers.

Scripts tell outcomes apart by these numbers, so a code means the same thing
whichever process returns it. Stdlib only: worker processes import it.
"""

EXIT_OK = 0
EXIT_ERROR = 1
"""The command failed, or the experiment (or a worker) did."""
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
"""The action is not allowed now (an owner is alive, read-only mode, a refused transition)."""
EXIT_CONFLICT = 5
"""Someone else changed or owns the experiment."""
EXIT_INTERRUPTED = 130
"""SIGINT (128 + 2)."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + 15): a worker stopped by its coordinator, or orphaned."""
