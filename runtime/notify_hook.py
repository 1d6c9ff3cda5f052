"""The ``--notify-cmd`` hook: a user's shell command, told about one alert as JSON on its stdin.

The command is the user's own (``notify-send``, a ``curl`` to a chat webhook),
so it runs through ``/bin/sh -c`` like a line they typed. It must finish within
``timeout`` seconds; its failure is reported to the caller, never raised
through the dashboard.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

TIMEOUT_S = 15.0


def run_notify_command(command: str, event: Mapping[str, Any], *, timeout: float = TIMEOUT_S) -> str | None:
    """Run ``command`` with ``event`` on stdin; None when it succeeded, else why it did not (one line)."""
    payload = json.dumps(dict(event), ensure_ascii=False) + "\n"
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            input=payload,
            text=True,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,  # a Ctrl-C in the dashboard's terminal is not the hook's
        )
    except subprocess.TimeoutExpired:
        return f"--notify-cmd took longer than {timeout:g}s and was stopped"
    except OSError as exc:
        return f"--notify-cmd could not start: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return f"--notify-cmd exited with {done.returncode}" + (f": {said[-1][:200]}" if said else "")
    return None


__all__ = ["TIMEOUT_S", "run_notify_command"]
