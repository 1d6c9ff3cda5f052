"""The actions expwatch takes on experiments, one module each (design §8).

Every action is planned once (a frozen plan carrying the file version it was
made on), shown, confirmed and executed as planned: execution refuses with
``ConflictError`` if the file moved since (for a stop: if another coordinator
owns it now), instead of planning again. The
dashboard and the command line call the same functions; ``*_experiment``
and ``cleanup_stale`` are plan-and-execute in one call for the CLI.
"""

from runtime.actions.common import ActionRefused, load_experiment, resolve_key, verdict_for
from runtime.actions.resume import ResumePlan, ResumeResult, execute_resume, plan_resume, resume_experiment
from runtime.actions.stale import (
    CleanupPlan,
    CleanupResult,
    Skipped,
    StaleMarkResult,
    StalePlan,
    cleanup_stale,
    execute_cleanup,
    execute_mark_stale,
    mark_stale_experiment,
    plan_cleanup,
    plan_mark_stale,
)
from runtime.actions.stop import StopPlan, StopResult, execute_stop, plan_stop, stop_experiment

__all__ = [
    "ActionRefused",
    "CleanupPlan",
    "CleanupResult",
    "ResumePlan",
    "ResumeResult",
    "Skipped",
    "StaleMarkResult",
    "StalePlan",
    "StopPlan",
    "StopResult",
    "cleanup_stale",
    "execute_cleanup",
    "execute_mark_stale",
    "execute_resume",
    "execute_stop",
    "load_experiment",
    "mark_stale_experiment",
    "plan_cleanup",
    "plan_mark_stale",
    "plan_resume",
    "plan_stop",
    "resolve_key",
    "resume_experiment",
    "stop_experiment",
    "verdict_for",
]
