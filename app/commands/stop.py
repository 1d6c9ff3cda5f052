"""``expwatch stop ID``: ask a live expwatch runner to stop at a run boundary (SIGTERM when asked again)."""

from __future__ import annotations

import argparse

from app.commands._common import add_read_only_argument, state_dir, store_errors
from state.store import StateStore

NAME = "stop"
HELP = "stop a running experiment: SIGINT to its runner (stops at a run boundary); again after the grace: SIGTERM"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="experiment id or file name")
    parser.add_argument("--dry-run", action="store_true", help="say which process would get which signal, send none")
    add_read_only_argument(parser)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.actions import execute_stop, plan_stop
    from runtime.exit_codes import EXIT_REFUSED

    store = StateStore(state_dir(args), read_only=args.read_only)
    with store_errors():
        plan = plan_stop(store, args.id)
        if not plan.allowed:
            raise CommandError(f"refusing to stop {plan.experiment_id}: {plan.refusal}", EXIT_REFUSED)
        if args.dry_run:
            assert plan.signum is not None and plan.owner is not None
            print(f"would send {plan.signum.name} to coordinator pid {plan.owner.pid} of {plan.experiment_id}")
            return 0
        result = execute_stop(store, plan)
    if result.signum.name == "SIGINT":
        print(
            f"{result.experiment_id}: SIGINT sent to coordinator pid {result.pid}; it stops at a run boundary and is "
            f"left interrupted (after {result.grace_s:g}s, `expwatch stop {result.experiment_id}` again sends SIGTERM)"
        )
    else:
        print(f"{result.experiment_id}: SIGTERM sent to coordinator pid {result.pid}; its workers are terminated now")
    return 0
