"""``run.shared`` kept in the hub (``expwatch run --hub URL``): the coordinator forwards each operation there.

The coordinator stays the one holder workers talk to (they stay stdlib-only
and never see Redis); instead of its in-memory ``LocalTable`` and the file
beside the experiment, it sends every ``get set del incr all`` to the hub's
hash as one atomic command or Lua script (``state.hub.shared``), so other
hosts' programs, ``expwatch kv`` and the inspector read the map as it is.
A hub lost mid-study answers the step with an error (the step fails with
``SharedStateUnavailable``, saying the hub is unreachable); nothing is ever
written to the file instead, which would split the map in two.
"""

from __future__ import annotations

import math
from typing import Any

from runtime.runner.errors import RunnerError
from runtime.runner.shared import OPS, SharedValueError, check_key, check_value
from state.hub.connection import HubAddress, HubError
from state.hub.schema import Hub
from state.hub.shared import HubSharedState, SharedRefused

#: Seconds the coordinator waits for the hub per operation: its loop (and the heartbeat) waits meanwhile.
HUB_TIMEOUT_S = 2.0


def connect(url: str) -> Hub:
    """A hub that answered a PING; ``RunnerError`` (one line, no password) otherwise."""
    try:
        hub = Hub(HubAddress.parse(url), timeout=HUB_TIMEOUT_S)
        hub.ping()
    except HubError as exc:
        raise RunnerError(f"--hub: {exc}") from None
    return hub


class HubTable:
    """The coordinator's view of the map when it lives in the hub: same requests and replies as ``LocalTable``."""

    #: Nothing to store with the state file: every change is in the hub already.
    changed = False

    def __init__(self, hub: Hub, host: str, experiment_id: str) -> None:
        self.state = HubSharedState(hub, host, experiment_id)

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request; the checks are ``LocalTable``'s, since a broken worker may send anything."""
        op, key, value = request.get("op"), request.get("k"), request.get("v")
        if op not in OPS:
            return {"error": f"unknown operation {op!r}"}
        try:
            if op == "all":
                return {"v": self.state.values(), "found": True}
            check_key(key)
            if op == "get":
                found = self.state.values(key)
                return {"v": found.get(key), "found": key in found}
            if op == "del":
                return {"found": self.state.delete(key)}
            if op == "incr":
                if type(value) not in (int, float) or not math.isfinite(value):
                    return {"error": f"incr({key!r}): the step must be a finite number, not {value!r}"}
                return {"v": self.state.incr(key, value), "found": True}
            check_value(key, value)
            self.state.set(key, value)
            return {"v": value, "found": True}
        except (SharedValueError, SharedRefused) as exc:
            return {"error": str(exc)}
        except HubError as exc:
            return {"error": f"shared run state unavailable: {exc}"}
