"""``expwatch mark-stale [ID|--all]``: running experiments whose owners are dead become interrupted."""

from __future__ import annotations

import argparse

from app.commands._common import add_read_only_argument, state_dir, store_errors
from state.store import StateStore

NAME = "mark-stale"
HELP = "mark a running experiment whose owner is dead as interrupted (or --all of them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", nargs="?", help="experiment id or file name")
    parser.add_argument("--all", action="store_true", help="every running experiment whose owner is dead")
    parser.add_argument("--dry-run", action="store_true", help="show the verdicts, change nothing")
    parser.add_argument("--force", action="store_true", help="mark it even if the owner looks alive or unknown")
    add_read_only_argument(parser)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_REFUSED, EXIT_USAGE
    from runtime.actions import (
        cleanup_stale,
        load_experiment,
        mark_stale_experiment,
        plan_cleanup,
        verdict_for,
    )

    if bool(args.id) == bool(args.all):
        raise CommandError("give an experiment id or --all (not both)", EXIT_USAGE)
    store = StateStore(state_dir(args), read_only=args.read_only)
    with store_errors():
        if args.all:
            if args.dry_run:
                found = plan_cleanup(store)
                for record, verdict in found:
                    print(f"would mark {record.experiment_id} interrupted: {verdict.reason}")
                if not found:
                    print("no running experiment has a dead owner")
                return 0
            results = cleanup_stale(store)
            for result in results:
                print(f"{result.experiment_id}: {result.from_status} -> {result.to_status} ({result.verdict.reason})")
            if not results:
                print("no running experiment has a dead owner")
            return 0
        if args.dry_run:
            if store.read_only:
                raise CommandError(f"read-only (observer) mode: refusing to mark {args.id} stale", EXIT_REFUSED)
            _, record = load_experiment(store, args.id)
            verdict = verdict_for(record)
            if record.status != "running":
                raise CommandError(f"{record.experiment_id} is {record.status}, not running: nothing to mark stale",
                                   EXIT_REFUSED)
            if not verdict.is_dead and not args.force:
                raise CommandError(
                    f"would refuse: owner of {record.experiment_id} is {verdict.liveness.value} ({verdict.reason})",
                    EXIT_REFUSED,
                )
            print(f"would mark {record.experiment_id} interrupted: {verdict.reason}")
            return 0
        result = mark_stale_experiment(store, args.id, force=args.force)
    print(f"{result.experiment_id}: {result.from_status} -> {result.to_status} ({result.verdict.reason})")
    return 0
