"""``python -m runtime.runner --resume ID``: the resumed runner that ``expwatch resume`` launches (internal).

Its command line is ``args.ResumeArgs``; it adopts the experiment the resume
handed to it and prints a one-line outcome.
"""

from __future__ import annotations

import sys

from runtime.exit_codes import EXIT_ERROR
from runtime.runner.args import HUB_FROM_ENV, ResumeArgs
from runtime.runner.errors import RunnerError
from runtime.runner.options import RunnerOptions, check_hub_options, check_workcell
from runtime.runner.start import adopt_and_run
from state.hub.connection import HUB_ENV, hub_url_from_env
from state.store import StoreError


def main(argv: list[str] | None = None) -> int:
    try:
        args = ResumeArgs.parse(argv)
        options = RunnerOptions(fail_fast=args.fail_fast)
        if args.gpus:
            options.gpus = args.gpus
        if args.grace_s is not None:
            options.grace_s = args.grace_s
        if args.heartbeat_s is not None:
            options.heartbeat_s = args.heartbeat_s
        if args.workcell:
            options.workcell = args.workcell
            check_workcell(options)
        if args.hub is not None:
            options.hub = hub_url_from_env() if args.hub == HUB_FROM_ENV else args.hub
            if not options.hub:
                raise RunnerError(f"this experiment keeps run.shared in a hub whose URL is taken from ${HUB_ENV}, which is not set")
            options.host_name = args.host_name
            check_hub_options(options)
        outcome = adopt_and_run(args.experiment_id, args.state_dir, options)
    except (RunnerError, StoreError) as exc:
        print(f"expwatch runner: {exc}", file=sys.stderr)
        return getattr(exc, "code", EXIT_ERROR)
    print(f"expwatch runner: {outcome.experiment_id} {outcome.status.value}: {outcome.message}")
    return outcome.exit_code
