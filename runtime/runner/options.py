"""How a run is carried out (processes, GPUs, grace, heartbeat, workcell), and how the options are merged.

Command-line values win over the study's ``options``, which win over the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runner.args import parse_gpus
from runtime.runner.errors import RunnerError
from runtime.runner.study import Study

@dataclass
class RunnerOptions:
    processes: int = 1
    gpus: tuple[int, ...] = ()
    fail_fast: bool = False
    grace_s: float = 10.0
    heartbeat_s: float = 2.0
    flush_s: float = 0.05
    min_write_interval_s: float = 0.2
    max_write_interval_s: float = 2.0
    kill_after_s: float = 5.0
    max_restarts: int = 2
    workcell: Path | None = None
    workcell_name: str | None = None
    hub: str | None = None
    """The hub URL that holds ``run.shared`` (None: the file beside the experiment)."""
    host_name: str | None = None
    """This host's name in the hub's keys (``check_hub`` sets the default: the agent's, the hostname)."""


def merge_options(study: Study, **given: Any) -> RunnerOptions:
    """Command-line values win over the study's ``options``, which win over the defaults."""
    opts = dict(study.options)
    for key, value in given.items():
        if value is not None:
            opts[key] = value
    options = RunnerOptions()
    if "processes" in opts:
        options.processes = int(opts["processes"])
    if opts.get("gpus") is not None:
        options.gpus = parse_gpus(opts["gpus"])
    options.fail_fast = bool(opts.get("fail_fast", False))
    if "grace" in opts:
        options.grace_s = float(opts["grace"])
    if "heartbeat" in opts:
        options.heartbeat_s = float(opts["heartbeat"])
    if opts.get("workcell"):
        options.workcell = Path(opts["workcell"]).resolve()
    if options.processes < 1:
        raise RunnerError("--processes must be at least 1")
    if options.workcell is not None and options.processes > 1:
        raise RunnerError(
            "--workcell needs a single worker process (lab devices have one owner); "
            f"got --processes {options.processes}"
        )
    check_workcell(options)
    options.hub = opts.get("hub") or None
    options.host_name = opts.get("host_name") or None
    check_hub_options(options)
    if options.heartbeat_s <= 0 or options.grace_s < 0:
        raise RunnerError("heartbeat must be positive and grace not negative")
    return options


def check_workcell(options: RunnerOptions) -> None:
    """Read the workcell file now, so a bad one is refused before anything starts."""
    if options.workcell is None:
        return
    from runtime.devices.workcell import WorkcellError, load_workcell

    try:
        options.workcell_name = load_workcell(options.workcell).name
    except WorkcellError as exc:
        raise RunnerError(str(exc)) from None


def check_hub_options(options: RunnerOptions) -> None:
    """Check ``--hub``'s URL shape and the host name (no connection yet); the host name defaults to the hostname."""
    if options.hub is None:
        if options.host_name is not None:
            raise RunnerError("--host-name names this host in a hub: it needs --hub")
        return
    import socket

    from state.hub.codec import host_name_from, valid_host_name
    from state.hub.connection import HubAddress, HubError

    try:
        HubAddress.parse(options.hub)
    except HubError as exc:
        raise RunnerError(f"--hub: {exc}") from None
    if options.host_name is None:
        options.host_name = host_name_from(socket.gethostname())
    if not valid_host_name(options.host_name):
        raise RunnerError(f"bad --host-name {options.host_name!r}: letters, digits, '.', '_' and '-', at most 64")
