"""``expwatch mark-stale [ID|--all]``: running experiments whose owners are dead become interrupted."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.commands._common import add_read_only_argument, command_error, report_done, state_dir, store_errors
from state.store import StateStore

if TYPE_CHECKING:
    from runtime.actions import StaleMarkResult

NAME = "mark-stale"
HELP = "mark a running experiment whose owner is dead as interrupted (or --all of them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", nargs="?", help="experiment id or file name")
    parser.add_argument("--all", action="store_true", help="every running experiment whose owner is dead")
    parser.add_argument("--dry-run", action="store_true", help="show the verdicts, change nothing")
    parser.add_argument(
        "--force",
        action="store_true",
        help="mark it even if the owner is unknown or only looks alive (never over a running process of this host)",
    )
    parser.add_argument(
        "--lem-rule",
        action="store_true",
        help="judge llenergymeasure files by llenergymeasure's own rule (a null or not-running pid is stale) "
        "instead of expwatch's proof",
    )
    add_read_only_argument(parser)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.actions import execute_cleanup, mark_stale_experiment, plan_cleanup, plan_mark_stale
    from runtime.exit_codes import EXIT_REFUSED, EXIT_USAGE
    from state.verdict import RULE_EVIDENCE, RULE_LEM

    rule = RULE_LEM if args.lem_rule else RULE_EVIDENCE

    if bool(args.id) == bool(args.all):
        raise CommandError("give an experiment id or --all (not both)", EXIT_USAGE)
    if args.all and args.force:
        raise CommandError("--force marks one experiment at a time: give its id, not --all", EXIT_USAGE)
    store = StateStore(state_dir(args), read_only=args.read_only)
    if args.dry_run and store.read_only:
        what = "clean up stale experiments" if args.all else f"mark {args.id} stale"
        raise CommandError(f"read-only (observer) mode: refusing to {what}", EXIT_REFUSED)
    with store_errors():
        if args.all:
            store.scan()
            plan = plan_cleanup(store.records(), rule=rule)
            code = 0
            if args.dry_run:
                for mark in plan:
                    print(f"would mark {mark.experiment_id} {mark.target}: {mark.verdict.reason}")
            else:
                outcome = execute_cleanup(store, plan)
                for result in outcome.done:
                    code = max(code, report_done(_done_line(result), result.journal_error))
                for skipped in outcome.skipped:  # each is said; the exit code is the worst refusal's
                    print(f"{skipped.plan.experiment_id}: left as it was ({skipped.reason})")
                    code = max(code, command_error(skipped.error).code if skipped.error is not None else EXIT_REFUSED)
            if not plan:
                print(plan.refusal)
            return code
        if args.dry_run:
            mark = plan_mark_stale(store, args.id, rule=rule)
            if not mark.allowed and not (args.force and mark.forcible):
                raise CommandError(f"would refuse to mark {mark.experiment_id} stale: {mark.refusal}", EXIT_REFUSED)
            print(f"would mark {mark.experiment_id} {mark.target}: {mark.verdict.reason} (rule: {mark.rule})")
            return 0
        result = mark_stale_experiment(store, args.id, force=args.force, rule=rule)
    return report_done(_done_line(result), result.journal_error)


def _done_line(result: StaleMarkResult) -> str:
    return f"{result.experiment_id}: {result.from_status} -> {result.to_status} ({result.verdict.reason})"
