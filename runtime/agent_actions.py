"""The agent's side of remote actions: requests from the hub, done with the CLI's own runtime code.

A ``plan`` request is planned here exactly as the dashboard plans locally
(``runtime.actions``), and the plan is kept under an id; an ``execute`` request
names that id and executes that plan, which refuses with a conflict if the file
moved since: what runs is what the user confirmed, never a silent re-plan. What
each plan was made on (the file's version) is kept in the hub too: an agent that
restarted in between plans again and executes only if the file has not moved, so
the result is the plan that was confirmed; otherwise it says to plan again.

Requests are answered at most once. One past its asker's deadline is answered
"expired", undone. An agent that dies leaves what it had read pending in the
stream: the host's next agent claims it (``XAUTOCLAIM``) and answers it, unless its
record already carries the answer; an execution is marked begun in the hub before
it starts, so one that a dead agent began is never run a second time.

It runs on its own thread with its own hub connection: a blocking read here never
delays the agent's publishing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from runtime.actions import (
    execute_mark_stale,
    execute_resume,
    execute_stop,
    plan_mark_stale,
    plan_resume,
    plan_stop,
)
from state.atomic import LockTimeout
from state.hub.actions import EXECUTE, PLAN, ActionAnswer, ActionRequest, HubActions, new_id
from state.hub.connection import HubError
from state.paths import UnsafePathError
from state.sources import MARK_STALE, RESUME, STOP, DirectorySource
from state.store import StateStore, StoreError
from state.verdict import LivenessProbe

#: What a refused action raises here (answered as a refusal, like the dashboard's notices).
EXPECTED = (StoreError, LockTimeout, PermissionError, UnsafePathError)
PLAN_KEPT_S = 600.0
MAX_PLANS = 100
BLOCK_MS = 1000
#: A request delivered and left unanswered this long was read by an agent that died: claimed and answered.
CLAIM_IDLE_MS = 3000


class ActionServer:
    """Answers ``host``'s action requests over ``sources`` until ``stop`` is set."""

    def __init__(
        self,
        actions: HubActions,
        host: str,
        sources: Iterable[DirectorySource],
        *,
        probe: LivenessProbe,
        clock: Callable[[], datetime],
        resume_template: str | None = None,
        accept: bool = True,
        on_status: Callable[[str], None] = lambda text: None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self.actions = actions
        self.host = host
        self.sources = {s.name: s for s in sources}
        self.probe = probe
        self.clock = clock
        self.resume_template = resume_template
        self.accept = accept
        self.on_status = on_status
        self.consumer = f"{host}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self._plans: dict[str, tuple[float, str, str, str, Any]] = {}
        self.handled = 0

    def serve(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Read and answer requests until ``stop``; only while ``ready`` is set (the agent holds the host's lease)."""
        joined, wait = False, 0.5
        while not stop.is_set():
            if ready is not None and not ready.is_set():
                stop.wait(0.1)
                continue
            try:
                if not joined:
                    self.actions.join(self.host)
                    joined = True
                for entry_id, request in self.actions.claim_stale(self.host, self.consumer, self.claim_idle_ms):
                    self._handle(entry_id, request, reclaimed=True)
                for entry_id, request in self.actions.read(self.host, self.consumer, BLOCK_MS):
                    self._handle(entry_id, request)
                wait = 0.5
            except HubError:
                joined = False  # a hub that restarted empty has no group: make it again
                self.actions.hub.close()
                stop.wait(wait)
                wait = min(10.0, wait * 2)

    def _handle(self, entry_id: str, request: ActionRequest | None, *, reclaimed: bool = False) -> None:
        """Answer one request once: never after its asker's deadline, never an execution a second time."""
        if request is None:
            self.actions.ack(self.host, entry_id)
            return
        source = request.source if request.source in self.sources else None
        record_key = self.actions.hub.record_key(self.host, source, request.key) if source else None
        what = f"{request.action.replace('_', ' ')} ({request.mode}) of {request.key} on {self.host}"
        if self.actions.now_ms() > request.deadline_ms:
            # The asker stopped waiting: doing it now would surprise them. A late answer says so.
            answer = ActionAnswer(request.id, False, f"{what} expired before this host's agent took it: nothing was done")
        elif reclaimed and record_key is not None and self.actions.answered_on_record(record_key, request.id):
            self.actions.ack(self.host, entry_id)  # done and answered by the agent that died: nothing to add
            return
        elif request.mode == EXECUTE and not self.actions.begin(request.id):
            answer = ActionAnswer(
                request.id, False, f"{what} was begun by an agent of this host that stopped before answering: "
                "not run again; look at the experiment before asking again",
            )
        else:
            answer = self._answer(request)
        self.handled += 1
        self.actions.answer(self.host, entry_id, answer, record_key)

    def _answer(self, request: ActionRequest) -> ActionAnswer:
        if not self.accept:
            return ActionAnswer(request.id, False, f"the agent on {self.host} was started with --no-actions: it takes no actions")
        source = self.sources.get(request.source)
        if source is None:
            return ActionAnswer(request.id, False, f"the agent on {self.host} publishes no source named {request.source!r}")
        store = StateStore(source.root)
        try:
            if request.mode == PLAN:
                return self._plan(request, store)
            if request.mode == EXECUTE:
                return self._execute(request, store)
            return ActionAnswer(request.id, False, f"unknown request mode {request.mode!r}")
        except EXPECTED as exc:
            return ActionAnswer(request.id, False, f"{request.action.replace('_', ' ')} refused on {self.host}: {exc}")

    def _plan(self, request: ActionRequest, store: StateStore) -> ActionAnswer:
        made = self._make_plan(request, store)
        if made is None:
            return ActionAnswer(request.id, False, f"unknown action {request.action!r}")
        plan, title, label, refusal = made
        plan_id = new_id()
        self._keep(plan_id, request, plan)
        return ActionAnswer(
            request.id, True, "planned", title=f"{title} {plan.experiment_id} on {self.host}?",
            lines=tuple(plan.describe()), refusal=refusal, plan_id=plan_id, confirm_label=label,
        )

    def _make_plan(self, request: ActionRequest, store: StateStore) -> tuple[Any, str, str, str | None] | None:
        """(plan, dialog title, confirm label, refusal) by the CLI's planning code; None for an unknown action."""
        now = self.clock()
        if request.action == RESUME:
            plan: Any = plan_resume(store, request.key, template=self.resume_template, probe=self.probe)
            return plan, "Resume", "Resume", None if plan.allowed else plan.refusal
        if request.action == MARK_STALE:
            plan = plan_mark_stale(store, request.key, probe=self.probe, now=now)
            return plan, "Mark stale", "Mark stale", plan.refusal
        if request.action == STOP:
            plan = plan_stop(store, request.key, probe=self.probe, now=now)
            terminate = plan.signum is not None and plan.signum.name == "SIGTERM"
            return plan, "Stop", "Terminate (SIGTERM)" if terminate else "Stop", plan.refusal
        return None

    def _planned(self, request: ActionRequest, store: StateStore) -> Any | str:
        """The plan ``request`` confirmed, or why there is none.

        Kept here since this agent made it; else (the agent that made it restarted or
        died) made again from the file, and only if the file is still at the version
        that plan was made on: what runs is what the user confirmed, or nothing.
        """
        kept = self._plans.pop(request.plan_id or "", None)
        if kept is not None and kept[1:4] == (request.action, request.source, request.key):
            return kept[4]
        described = self.actions.kept_plan(self.host, request.plan_id or "")
        if described is None or [described.get(k) for k in ("action", "source", "key")] != [request.action, request.source, request.key]:
            return f"the agent on {self.host} holds no such plan (the plan is older than {PLAN_KEPT_S / 60:.0f} min, or the hub lost it): plan again"
        made = self._make_plan(request, store)
        if made is None or _fingerprint(made[0]) != described.get("made_on"):
            return f"{request.key} on {self.host} changed since it was planned (its agent restarted in between): plan again"
        return made[0]

    def _execute(self, request: ActionRequest, store: StateStore) -> ActionAnswer:
        plan = self._planned(request, store)
        if isinstance(plan, str):
            return ActionAnswer(request.id, False, plan)
        if request.action == RESUME:
            result = execute_resume(store, plan, probe=self.probe)
            text, journal_error = f"resumed {plan.experiment_id} on {self.host}: pid {result.pid}, log {result.log_path}", result.journal_error
        elif request.action == MARK_STALE:
            marked = execute_mark_stale(store, plan)
            text, journal_error = f"{marked.experiment_id} on {self.host}: {marked.from_status} → {marked.to_status}", marked.journal_error
        else:
            stopped = execute_stop(store, plan, probe=self.probe)
            after = "it stops at a run boundary" if stopped.signum.name == "SIGINT" else "its workers are terminated now"
            text, journal_error = f"{stopped.signum.name} sent to {stopped.experiment_id} on {self.host} (pid {stopped.pid}): {after}", None
        self.on_status(text)
        if journal_error is not None:
            return ActionAnswer(request.id, True, f"{text} (done, but {journal_error})", warning=True)
        return ActionAnswer(request.id, True, text)

    def _keep(self, plan_id: str, request: ActionRequest, plan: Any) -> None:
        now = time.monotonic()
        for old in [k for k, v in self._plans.items() if now - v[0] > PLAN_KEPT_S]:
            del self._plans[old]
        while len(self._plans) >= MAX_PLANS:
            del self._plans[next(iter(self._plans))]
        self._plans[plan_id] = (now, request.action, request.source, request.key, plan)
        described = {"action": request.action, "source": request.source, "key": request.key, "made_on": _fingerprint(plan)}
        self.actions.keep_plan(self.host, plan_id, described)


def _fingerprint(plan: Any) -> list[Any]:
    """What a plan was made on: the file's version (and a resume's launch record), as JSON compares it."""
    launch = getattr(plan, "launch_record", None)
    return [list(plan.version), list(launch) if launch is not None else None]


__all__ = ["ActionServer"]
