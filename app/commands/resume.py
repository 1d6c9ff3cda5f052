"""``expwatch resume ID``: relaunch an interrupted or failed experiment, detached."""

from __future__ import annotations

import argparse
import os

from app.commands._common import add_read_only_argument, report_done, state_dir, store_errors
from state.store import StateStore

NAME = "resume"
HELP = "resume an interrupted or failed experiment (only its unfinished runs), detached"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="experiment id or file name")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, change nothing")
    parser.add_argument("--retry-failed", action="store_true", help="run the failed runs again too")
    parser.add_argument(
        "--resume-template",
        default=None,
        metavar="T",
        help="command for llenergymeasure experiments (default $EXPWATCH_RESUME_TEMPLATE or "
        "'lem experiment --resume {experiment_id}'; fields {experiment_id} {state_dir} {config_path})",
    )
    parser.add_argument(
        "--study-resume-template",
        default=None,
        metavar="T",
        help="command for llenergymeasure 0.7.0 studies (default $EXPWATCH_STUDY_RESUME_TEMPLATE or "
        "'llem run {study_dir}/_study-artefacts/study_config.yaml --resume-dir {study_dir}')",
    )
    add_read_only_argument(parser)


def run(args: argparse.Namespace) -> int:
    from runtime.actions import execute_resume, plan_resume
    from runtime.exit_codes import EXIT_REFUSED

    store = StateStore(state_dir(args), read_only=args.read_only)
    template = args.resume_template or os.environ.get("EXPWATCH_RESUME_TEMPLATE") or None
    with store_errors():
        plan = plan_resume(store, args.id, retry_failed=args.retry_failed, template=template,
                           study_template=args.study_resume_template)
        if args.dry_run:
            print("\n".join(plan.describe()))
            return 0 if plan.allowed else EXIT_REFUSED
        result = execute_resume(store, plan)
    return report_done(
        f"resumed {plan.experiment_id}: pid {result.pid}, {plan.to_run}; log {result.log_path}"
        if plan.format.value == "expwatch-1"
        else f"resumed {plan.experiment_id}: pid {result.pid} ({' '.join(plan.argv)}); log {result.log_path}",
        result.journal_error,
    )
