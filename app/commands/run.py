"""``expwatch run STUDY.py``: run a study's grid across worker processes, recording everything."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands._common import experiment_id, gpu_ids, non_negative_seconds, positive_count

NAME = "run"
HELP = "run a study file (steps over a parameter grid) across processes, recorded in the state directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", type=Path, help="the study file (a Python module with `steps` and `grid`)")
    parser.add_argument("--processes", "-p", type=positive_count, default=None, metavar="N", help="worker processes (default 1)")
    parser.add_argument("--gpus", type=gpu_ids, default=None, metavar="0,1,...",
                        help="GPU ids: worker i gets gpus[i %% len] as its CUDA_VISIBLE_DEVICES")
    parser.add_argument("--name", default=None, help="a readable name for the experiment")
    parser.add_argument("--id", dest="experiment_id", type=experiment_id, default=None,
                        help="the experiment id (default: generated)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    parser.add_argument("--workcell", type=Path, default=None, metavar="FILE",
                        help="lab devices for the steps (run.devices[name]); needs a single process")
    parser.add_argument("--grace", type=non_negative_seconds, default=None, metavar="SECONDS",
                        help="on SIGINT/SIGTERM, how long workers may finish their run (default 10)")
    parser.add_argument("--hub", default=None, metavar="URL",
                        help="keep run.shared in this Redis hub (redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=FLEET]; "
                             "'env': $EXPWATCH_HUB's, which keeps a password off the command line)")
    parser.add_argument("--host-name", default=None, metavar="NAME",
                        help="this host's name in the hub (default: the hostname, as `expwatch agent` names it)")


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from app.commands._common import other_kind, store_errors
    from runtime.exit_codes import EXIT_NOT_FOUND, EXIT_USAGE
    from runtime.runner.args import HUB_FROM_ENV
    from state.hub.connection import HUB_ENV, hub_url_from_env
    from runtime.runner.errors import RunnerError
    from runtime.runner.start import run_study
    from state.sources.opening import not_a_directory

    hub = args.hub
    if hub == HUB_FROM_ENV:
        hub = hub_url_from_env()
        if hub is None:
            raise CommandError(f"--hub env: ${HUB_ENV} is not set", EXIT_USAGE)
    spec = resolve_sources(args)[0]  # as typed: Path() would fold a URL's '//'
    refusal = other_kind(spec, NAME, writes=True)
    if refusal is not None:
        raise CommandError(refusal, EXIT_USAGE)
    problem = not_a_directory(spec) if Path(spec).exists() else None  # a missing one is made
    if problem is not None:
        raise CommandError(problem, EXIT_NOT_FOUND)
    if not args.study.is_file():
        raise CommandError(f"no study file at {args.study}", EXIT_NOT_FOUND)
    if args.workcell is not None and not args.workcell.is_file():
        raise CommandError(f"no workcell file at {args.workcell}", EXIT_NOT_FOUND)
    try:
        with store_errors():
            outcome = run_study(
                args.study,
                Path(spec),
                processes=args.processes,
                gpus=args.gpus,
                name=args.name,
                experiment_id=args.experiment_id,
                fail_fast=args.fail_fast,
                workcell=args.workcell,
                grace_s=args.grace,
                hub=hub,
                host_name=args.host_name,
                out=lambda line: print(line, flush=True),
            )
    except RunnerError as exc:
        raise CommandError(str(exc), exc.code) from None
    summary = f"{outcome.runs_completed}/{outcome.runs_total} runs completed"
    if outcome.runs_failed:
        summary += f", {outcome.runs_failed} failed"
    print(f"{outcome.experiment_id} {outcome.status.value}: {summary}")
    if outcome.status.value != "completed":
        print(f"  {outcome.message}")
        print(f"  details: expwatch show {outcome.experiment_id}; log {outcome.log_path}")
    return outcome.exit_code
