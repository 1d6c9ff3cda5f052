"""The agent's side of remote actions: requests from the hub, done with the CLI's own runtime code.

A ``plan`` request is planned here exactly as the dashboard plans locally
(``runtime.actions``), and the plan is kept under an id; an ``execute`` request
names that id and executes that plan, which refuses with a conflict if the file
moved since: what runs is what the user confirmed, never a silent re-plan. Plans
are kept a few minutes and are lost when the agent restarts (the dashboard is then
told to plan again). Requests past their deadline are dropped with an answer
nobody waits for, so nothing happens after the asker gave up.

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
        self._plans: dict[str, tuple[float, str, str, str, Any]] = {}
        self.handled = 0

    def serve(self, stop: threading.Event) -> None:
        joined, wait = False, 0.5
        while not stop.is_set():
            try:
                if not joined:
                    self.actions.join(self.host)
                    joined = True
                for entry_id, request in self.actions.read(self.host, self.consumer, BLOCK_MS):
                    self._handle(entry_id, request)
                wait = 0.5
            except HubError:
                joined = False  # a hub that restarted empty has no group: make it again
                self.actions.hub.close()
                stop.wait(wait)
                wait = min(10.0, wait * 2)

    def _handle(self, entry_id: str, request: ActionRequest | None) -> None:
        if request is None:
            self.actions.ack(self.host, entry_id)
            return
        if self.actions.now_ms() > request.deadline_ms:
            self.actions.ack(self.host, entry_id)  # the asker gave up: doing it now would surprise them
            return
        answer = self._answer(request)
        self.handled += 1
        source = request.source if request.source in self.sources else None
        record_key = self.actions.hub.record_key(self.host, source, request.key) if source else None
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
        now = self.clock()
        if request.action == RESUME:
            plan: Any = plan_resume(store, request.key, template=self.resume_template, probe=self.probe)
            title, label, refusal = "Resume", "Resume", None if plan.allowed else plan.refusal
        elif request.action == MARK_STALE:
            plan = plan_mark_stale(store, request.key, probe=self.probe, now=now)
            title, label, refusal = "Mark stale", "Mark stale", plan.refusal
        elif request.action == STOP:
            plan = plan_stop(store, request.key, probe=self.probe, now=now)
            terminate = plan.signum is not None and plan.signum.name == "SIGTERM"
            title, label, refusal = "Stop", "Terminate (SIGTERM)" if terminate else "Stop", plan.refusal
        else:
            return ActionAnswer(request.id, False, f"unknown action {request.action!r}")
        plan_id = new_id()
        self._keep(plan_id, request, plan)
        return ActionAnswer(
            request.id, True, "planned", title=f"{title} {plan.experiment_id} on {self.host}?",
            lines=tuple(plan.describe()), refusal=refusal, plan_id=plan_id, confirm_label=label,
        )

    def _execute(self, request: ActionRequest, store: StateStore) -> ActionAnswer:
        kept = self._plans.pop(request.plan_id or "", None)
        if kept is None or kept[1:4] != (request.action, request.source, request.key):
            return ActionAnswer(request.id, False, f"the agent on {self.host} holds no such plan (it restarted, or the plan is older than {PLAN_KEPT_S / 60:.0f} min): plan again")
        plan = kept[4]
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


__all__ = ["ActionServer"]
