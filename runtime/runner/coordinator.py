"""The coordinator: drives the worker processes of one experiment and keeps its state file current.

The coordinator is the only writer of the experiment's state file. Workers
(``runtime.runner.worker``) report run results in batches over a socket pair;
the coordinator applies them to its in-memory ``ExperimentDoc`` and writes it
coalesced: at most every ``min_write_interval_s`` (stretched when a write is
slow, so that writing never eats more than about an eighth of the time), at
once on every status change, and at least every heartbeat.

Started (see ``start``) by ``expwatch run STUDY.py`` (the command's process
becomes the coordinator) or by ``expwatch resume`` as ``python -m
runtime.runner --resume ID``, which adopts an experiment whose recorded owner
is itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import socket
import subprocess
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.exit_codes import EXIT_CONFLICT, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from runtime.launcher import open_log, python_env
from runtime.liveness import identity_of
from runtime.runner import protocol
from runtime.runner.args import WorkerArgs
from runtime.runner.device_mirror import DeviceMirror
from runtime.runner.energy import EnergyMeter
from runtime.runner.errors import OwnershipLost, StateWriteFailed
from runtime.runner.options import RunnerOptions
from runtime.runner.shared import LocalTable
from runtime.runner.signals import SIGNAL_NAMES, SignalInbox
from runtime.runner.spool import SpooledResult, discard, discard_all, open_spool, read_spool, spool_dir
from runtime.runner.study import Study
from runtime.runner.worker_handle import WorkerHandle, describe_exit
from state.collector import long_lived_frozen
from state.doc_json import RunsJsonCache
from state.journal import current_user
from state.mutations import apply_transition
from state.native import ExceptionInfo, ExperimentDoc, OwnerIdentity, ProcessInfo, RunRecord, RunStatus
from state.shared import MAX_SHARED_BYTES, SharedStateError, read_shared, write_shared
from state.store import ConflictError, StateStore, StoreError
from state.transitions import ExperimentStatus, ProcessStatus

if TYPE_CHECKING:
    from runtime.runner.hub_shared import HubTable


def _now() -> datetime:
    return datetime.now().astimezone()


def set_run_fields(rec: RunRecord, values: dict[str, Any]) -> None:
    """Set fields of a run record without pydantic's per-attribute ``__setattr__``.

    Each finished run sets eight fields; through ``__setattr__`` that was a
    quarter of the coordinator's time at 100,000 runs (cProfile: 1,000,335
    calls of ``BaseModel.__setattr__``). These models do not validate
    assignments, and pydantic keeps a model's field values in its ``__dict__``
    and the names set in ``__pydantic_fields_set__``: writing both is what
    the assignments did, in one step.
    """
    rec.__dict__.update(values)
    rec.__pydantic_fields_set__.update(values)


class Coordinator:
    """Drives the workers of one experiment and keeps its state file current."""

    def __init__(
        self,
        store: StateStore,
        key: str,
        doc: ExperimentDoc,
        version: Any,
        study: Study,
        options: RunnerOptions,
        *,
        log_path: Path,
        out: Callable[[str], None] | None = None,
        runs_json: RunsJsonCache | None = None,
    ):
        self.store = store
        self.key = key
        self.doc = doc
        self.version = version
        self.study = study
        self.options = options
        self.log_path = log_path
        self.out = out or (lambda line: None)
        self.me: OwnerIdentity = doc.owner or identity_of()
        self.tz: tzinfo | None = _now().tzinfo
        self.who = f"{current_user()}@runner"

        self.sel = selectors.DefaultSelector()
        self.workers: dict[int, WorkerHandle] = {}
        self.restarts: dict[int, int] = {}
        self.pending: deque[int] = deque()
        self.avg_run_s: float | None = None

        self.stopping = False
        self.stop_reason: str | None = None
        self.stop_status = ExperimentStatus.INTERRUPTED
        self.grace_deadline: float | None = None
        self.first_failure: str | None = None
        self.worker_errors: list[str] = []

        self.dirty = True
        self.last_write = 0.0
        self.next_write_at = 0.0
        self.write_interval = options.min_write_interval_s
        self.writes = 0
        #: The runs' JSON between writes (cProfile of 100,000 runs: 0.9 s of 2.3 s in to_json); every
        #: change to a run record forgets its block.
        self._runs_json = runs_json or RunsJsonCache()

        self._inbox = SignalInbox()
        self._log_fd: int | None = None
        self._energy: EnergyMeter | None = None
        self._device_mirror: DeviceMirror | None = None
        self.outcome_message = ""
        self.spool = spool_dir(store.sidecar_dir, key)
        self._replayed_files: list[Path] = []
        #: ``run.shared`` of every worker (None until read from disk: an unreadable file is never overwritten).
        self.shared: LocalTable | HubTable | None = None

    # -- logging ---------------------------------------------------------------
    def log(self, line: str) -> None:
        if self._log_fd is None:
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        with contextlib.suppress(OSError):
            os.write(self._log_fd, f"[{stamp} coordinator] {line}\n".encode("utf-8", "replace"))

    # -- signals ---------------------------------------------------------------
    def _take_signals(self) -> None:
        for signum in self._inbox.take():
            name = SIGNAL_NAMES.get(signum, str(signum))
            if self.stopping and self.stop_status is ExperimentStatus.INTERRUPTED:
                self.log(f"second {name}: terminating workers now")
                self.grace_deadline = time.monotonic()
            else:
                self.request_stop(f"interrupted by {name}", ExperimentStatus.INTERRUPTED)

    # -- workers ---------------------------------------------------------------
    def _gpu_for(self, index: int) -> int | None:
        gpus = self.options.gpus
        return gpus[index % len(gpus)] if gpus else None

    def _spawn(self, index: int) -> WorkerHandle:
        gpu = self._gpu_for(index)
        spool_fd, spool_path = self._open_spool(index)
        parent, child = socket.socketpair()
        workcell = self.options.workcell
        cmd = WorkerArgs(
            fd=child.fileno(),
            study=str(self.study.path),
            index=index,
            gpu=gpu,
            parent=os.getpid(),
            flush_s=self.options.flush_s,
            heartbeat_s=self.options.heartbeat_s,
            workcell=str(workcell) if workcell is not None else None,
            publish_dir=str(self.store.devices_dir.resolve()) if workcell is not None else None,
            spool_fd=spool_fd,
        ).to_argv()
        extra = {"EXPWATCH_EXPERIMENT_ID": self.doc.experiment_id, "EXPWATCH_PROCESS_INDEX": str(index)}
        if gpu is not None:
            extra["CUDA_VISIBLE_DEVICES"] = str(gpu)
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=(child.fileno(),) if spool_fd is None else (child.fileno(), spool_fd),
                stdin=subprocess.DEVNULL,
                stdout=self._log_fd,
                stderr=self._log_fd,
                env=python_env(extra),
                close_fds=True,
                # Own process group: a terminal's Ctrl-C reaches the coordinator only, which
                # stops the workers at a run boundary.
                process_group=0,
            )
        finally:
            child.close()
            if spool_fd is not None:
                os.close(spool_fd)
        worker = WorkerHandle(index=index, gpu_id=gpu, proc=proc, sock=parent, spool=spool_path)
        self.sel.register(parent, selectors.EVENT_READ, worker)
        self.workers[index] = worker
        protocol.send(parent, {
            "t": "init",
            "experiment_id": self.doc.experiment_id,
            "attempt": self.doc.attempt,
            "config": self.doc.config,
        })
        info = self.doc.processes[str(index)]
        info.owner = identity_of(proc.pid, role="worker", process_index=index)
        info.status = ProcessStatus.RUNNING
        info.started_at = _now()
        info.heartbeat_at = info.started_at
        info.completed_at = None
        info.error_message = None
        self.log(f"worker {index} started: pid {proc.pid}" + (f", gpu {gpu}" if gpu is not None else ""))
        self.dirty = True
        return worker

    def _open_spool(self, index: int) -> tuple[int | None, Path | None]:
        """The worker's results spool; without one it still runs (a kill then costs more reruns)."""
        try:
            return open_spool(self.spool, self.doc, index)
        except OSError as exc:
            self.log(f"worker {index}: no results spool ({exc.strerror or exc}); runs finished but not yet "
                     "stored would run again after a kill")
            return None, None

    def _replay(self, spooled: list[SpooledResult], only: set[int] | None = None) -> list[int]:
        """Mark completed the spooled runs the state does not have yet; the indexes marked.

        Each result is checked against the run it names (index in range, same
        ``id_run``, fields and state objects, times numbers): a spool that does
        not fit is passed over, never trusted into the file.
        """
        runs = self.doc.runs
        marked = []
        for item in spooled:
            result = item.result
            index = result.get("i")
            if type(index) is not int or not 0 <= index < len(runs) or (only is not None and index not in only):
                continue
            rec = runs[index]
            fields, state, t0, t1 = result.get("f", {}), result.get("st", {}), result.get("t0"), result.get("t1")
            if rec.status is RunStatus.COMPLETED or rec.id_run != result.get("r"):
                continue
            if not isinstance(fields, dict) or not isinstance(state, dict):
                continue
            if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in (t0, t1)):
                continue
            try:
                started, completed = datetime.fromtimestamp(t0, self.tz), datetime.fromtimestamp(t1, self.tz)
            except (OverflowError, OSError, ValueError):
                continue
            rec.status = RunStatus.COMPLETED
            rec.fields, rec.state = fields, state
            rec.exception = None
            rec.current_step = None
            rec.process_index = item.process_index
            rec.attempt = item.attempt
            rec.started_at, rec.completed_at = started, completed
            self._runs_json.forget(index)
            marked.append(index)
        return marked

    def _send(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        if not worker.open:
            return
        try:
            protocol.send(worker.sock, message)
        except OSError:
            pass  # the worker is gone; its EOF is handled by the loop

    def _target(self) -> int:
        """How many runs each worker should hold: about a quarter second of work.

        At most 32,768: the average is the steps' time, and a worker spends
        5-10 µs of its own on each run besides, so for runs of a microsecond
        8,192 were 40-80 ms of work and the worker ran dry while the coordinator
        wrote a big state file (py-spy --idle of a 100,000-run study: 194 samples
        of the worker waiting for work at 8,192, 69 at 32,768; 1,024 had been
        2.8 s of a 6 s run).
        """
        if self.avg_run_s is None:
            return 2
        return max(1, min(32768, math.ceil(0.25 / max(self.avg_run_s, 1e-6))))

    def _dispatch(self) -> None:
        if self.stopping:
            return
        ready = [w for w in self.workers.values() if w.open and w.fatal is None and not w.sent_done]
        if self.pending and ready:
            target = self._target()
            fair = math.ceil(len(self.pending) / len(ready))
            for worker in ready:
                if not self.pending:
                    break
                held = len(worker.outstanding)
                if held > target // 2 and not (worker.need and held == 0):
                    continue
                take = min(target - held, max(fair, 1), len(self.pending))
                if take <= 0:
                    continue
                batch = []
                for _ in range(take):
                    index = self.pending.popleft()
                    rec = self.doc.runs[index]
                    batch.append([index, rec.id_run, rec.params])
                    worker.outstanding.append(index)
                worker.need = False
                self._send(worker, {"t": "assign", "runs": batch})
        if not self.pending and all(not w.outstanding for w in self.workers.values() if w.open):
            for worker in ready:
                worker.sent_done = True
                self._send(worker, {"t": "done"})

    def request_stop(self, reason: str, status: ExperimentStatus) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        self.stop_status = status
        self.grace_deadline = time.monotonic() + self.options.grace_s
        self.log(f"stopping: {reason} (grace {self.options.grace_s:g}s)")
        for worker in self.workers.values():
            self._send(worker, {"t": "stop"})
        self.dirty = True

    def _enforce_grace(self) -> None:
        if not self.stopping or self.grace_deadline is None:
            return
        now = time.monotonic()
        if now < self.grace_deadline:
            return
        for worker in self.workers.values():
            if worker.proc.poll() is not None:
                continue
            if worker.terminated_at is None:
                self.log(f"worker {worker.index} (pid {worker.proc.pid}) still busy after the grace period: SIGTERM")
                worker.terminated_at = now
                with contextlib.suppress(OSError):
                    worker.proc.terminate()
            elif not worker.killed and now - worker.terminated_at > self.options.kill_after_s:
                self.log(f"worker {worker.index} (pid {worker.proc.pid}) ignored SIGTERM: SIGKILL")
                worker.killed = True
                with contextlib.suppress(OSError):
                    worker.proc.kill()

    # -- messages --------------------------------------------------------------
    def _on_readable(self, worker: WorkerHandle) -> None:
        try:
            data = worker.sock.recv(1 << 18)
        except OSError:
            data = b""
        if not data:
            self._on_eof(worker)
            return
        try:
            for message in worker.reader.feed(data):
                self._on_message(worker, message)
        except ValueError as exc:
            self.log(f"worker {worker.index}: unreadable message ({exc}); dropping the connection")
            with contextlib.suppress(OSError):
                worker.proc.kill()
            self._on_eof(worker)

    def _on_message(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        kind = message.get("t")
        info = self.doc.processes[str(worker.index)]
        if kind == "batch":
            info.heartbeat_at = datetime.fromtimestamp(message["at"], self.tz)
            done = failed = 0
            for result in message["done"]:
                outcome = self._apply_result(worker, result)
                done += outcome == "completed"
                failed += outcome == "failed"
            # Counted once a batch: ProcessInfo is a pydantic model, and 100,000 `+= 1` through its
            # __setattr__ were 0.7 s of a 100,000-run study (cProfile: 100,265 BaseModel.__setattr__ calls).
            if done:
                info.runs_done += done
            if failed:
                info.runs_failed += failed
            self._apply_current(worker, info, message.get("cur"))
            if message.get("need"):
                worker.need = True
            self.dirty = True
        elif kind == "fatal":
            worker.fatal = message.get("error") or "worker failed"
            self.log(f"worker {worker.index} failed: {worker.fatal}\n{message.get('traceback', '')}")
            self.worker_errors.append(f"worker {worker.index}: {worker.fatal}")
        elif kind == "kv":
            self._on_shared(worker, message)
        elif kind == "bye":
            worker.said_bye = True

    def _on_shared(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        """Apply one ``run.shared`` operation and answer it; a change is stored with the next write."""
        if self.shared is None:
            reply: dict[str, Any] = {"error": "shared run state is not loaded"}
        else:
            reply = self.shared.apply(message)
            if self.shared.changed:
                self.dirty = True
        self._send(worker, {"t": "kv", "n": message.get("n"), **reply})

    def _apply_result(self, worker: WorkerHandle, result: dict[str, Any]) -> str:
        """Store one finished run's result; its outcome (completed, failed or interrupted)."""
        index = result["i"]
        if worker.outstanding and worker.outstanding[0] == index:
            worker.outstanding.popleft()
        else:
            with contextlib.suppress(ValueError):
                worker.outstanding.remove(index)
        rec = self.doc.runs[index]
        outcome = result["s"]
        t0, t1 = result["t0"], result["t1"]
        values = {
            "fields": result.get("f") or {},
            "state": result.get("st") or {},
            "process_index": worker.index,
            "attempt": self.doc.attempt,
            "started_at": datetime.fromtimestamp(t0, self.tz),
        }
        if outcome == "completed":
            values.update(status=RunStatus.COMPLETED, exception=None, current_step=None,
                          completed_at=datetime.fromtimestamp(t1, self.tz))
        elif outcome == "failed":
            values.update(status=RunStatus.FAILED, exception=ExceptionInfo(**result["e"]),
                          current_step=result.get("step"), completed_at=datetime.fromtimestamp(t1, self.tz))
        else:  # interrupted: it will run again
            values.update(status=RunStatus.PENDING, current_step=None, completed_at=None)
            self.pending.appendleft(index)
        set_run_fields(rec, values)
        self._runs_json.forget(index)
        if outcome == "failed":
            self._on_run_failed(rec)
        if worker.current == index:
            worker.current = None
        duration = max(0.0, t1 - t0)
        self.avg_run_s = duration if self.avg_run_s is None else 0.9 * self.avg_run_s + 0.1 * duration
        return outcome

    def _apply_current(self, worker: WorkerHandle, info: ProcessInfo, cur: dict[str, Any] | None) -> None:
        if cur is None:
            worker.current = None
            info.current_run = None
            info.current_step = None
            return
        rec = self.doc.runs[cur["i"]]
        if rec.status is RunStatus.COMPLETED:
            return
        worker.current = cur["i"]
        self._runs_json.forget(rec.index)
        rec.status = RunStatus.RUNNING
        rec.process_index = worker.index
        rec.attempt = self.doc.attempt
        rec.current_step = cur.get("step")
        rec.started_at = datetime.fromtimestamp(cur["t0"], self.tz)
        if "f" in cur:
            rec.fields = cur["f"]
        info.current_run = rec.id_run
        info.current_step = rec.current_step

    def _on_run_failed(self, rec: RunRecord) -> None:
        exc = rec.exception
        summary = f"run {rec.id_run} failed: {exc.type}: {exc.message}" if exc else f"run {rec.id_run} failed"
        if self.first_failure is None:
            self.first_failure = summary
        if self.options.fail_fast:
            self.request_stop(f"fail-fast: {summary}", ExperimentStatus.FAILED)

    def _on_eof(self, worker: WorkerHandle) -> None:
        if not worker.open:
            return
        worker.open = False
        with contextlib.suppress(Exception):
            self.sel.unregister(worker.sock)
        worker.sock.close()
        try:
            code = worker.proc.wait(timeout=self.options.kill_after_s)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            code = worker.proc.wait()
        info = self.doc.processes[str(worker.index)]
        info.completed_at = _now()
        info.current_run = None
        info.current_step = None
        clean = worker.said_bye and worker.fatal is None
        died = not worker.said_bye
        leftover = list(worker.outstanding)
        worker.outstanding.clear()
        if died and leftover and worker.spool is not None:
            # Runs it finished but could not report before it died are on disk: not run again.
            found = self._replay(read_spool(self.spool, self.doc, only=worker.spool).results, set(leftover))
            if found:
                info.runs_done += len(found)
                leftover = [i for i in leftover if i not in found]
                self.log(f"worker {worker.index}: {len(found)} runs it finished before it died taken from its spool")
        if died and leftover and not self.stopping:
            victim = self.doc.runs[leftover.pop(0)]
            self._runs_json.forget(victim.index)
            how = describe_exit(code)
            victim.status = RunStatus.FAILED
            victim.process_index = worker.index
            victim.completed_at = _now()
            victim.exception = ExceptionInfo(
                type="WorkerDied",
                message=f"worker process {worker.index} (pid {worker.proc.pid}) {how} during this run",
            )
            info.runs_failed += 1
            self.log(f"worker {worker.index} (pid {worker.proc.pid}) {how} during run {victim.id_run}")
            self._on_run_failed(victim)
        for index in reversed(leftover):
            rec = self.doc.runs[index]
            if rec.status is not RunStatus.COMPLETED:
                self._runs_json.forget(index)
                rec.status = RunStatus.PENDING
                rec.current_step = None
                self.pending.appendleft(index)
        if clean and code == 0 and not self.stopping:
            info.status = ProcessStatus.COMPLETED
        elif clean and self.stopping:
            info.status = ProcessStatus.INTERRUPTED
            info.error_message = f"stopped: {self.stop_reason}"
        else:
            info.status = ProcessStatus.FAILED
            info.error_message = worker.fatal or f"worker {describe_exit(code)}"
            if died:
                self.worker_errors.append(f"worker {worker.index} {describe_exit(code)}")
        self.log(f"worker {worker.index} (pid {worker.proc.pid}) {describe_exit(code)}")
        self.dirty = True
        self._maybe_respawn(worker)

    def _maybe_respawn(self, worker: WorkerHandle) -> None:
        if self.stopping or worker.fatal is not None or worker.said_bye or not self.pending:
            return
        used = self.restarts.get(worker.index, 0)
        if used >= self.options.max_restarts:
            self.log(f"worker {worker.index}: restart limit ({self.options.max_restarts}) reached")
            return
        self.restarts[worker.index] = used + 1
        self._spawn(worker.index)

    # -- writing ---------------------------------------------------------------
    def _refresh_progress(self) -> None:
        live = [w for w in self.workers.values() if w.open and w.fatal is None]
        shares = {w.index: 0 for w in live}
        if live:
            base, extra = divmod(len(self.pending), len(live))
            for n, worker in enumerate(live):
                shares[worker.index] = base + (1 if n < extra else 0)
        for key, info in self.doc.processes.items():
            worker = self.workers.get(info.process_index)
            held = len(worker.outstanding) if worker is not None and worker.open else 0
            counted = info.runs_done + info.runs_failed + held
            if (self.stopping or not live) and self.pending:
                # Stopping, or runs left to no one: each process keeps the share it had (as a killed
                # one's file does), never a total that reads as all its runs done.
                info.runs_total = max(info.runs_total, counted)
            else:
                info.runs_total = counted + shares.get(info.process_index, 0)

    def _refresh_energy(self) -> None:
        if self._energy is None or self.doc.energy is None:
            return
        self._energy.refresh(self.doc.energy)

    def _refresh_devices(self) -> None:
        """Copy the workcell's latest published snapshot (written by the worker that owns it)."""
        if not self.options.workcell_name:
            return
        if self._device_mirror is None:
            self._device_mirror = DeviceMirror(self.store.devices_dir, self.options.workcell_name)
        devices = self._device_mirror.changed()
        if devices is not None:
            self.doc.devices = devices

    def write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (not self.dirty or now < self.next_write_at):
            if now - self.last_write < self.options.heartbeat_s:
                return
        self._refresh_progress()
        self._refresh_energy()
        self._refresh_devices()
        self.doc.heartbeat_at = _now()
        self.doc.revision += 1
        started = time.perf_counter()
        try:
            try:
                saved = self.store.save(self.doc, expected=self.version, key=self.key, encode=self._runs_json.parts)
            except ConflictError:
                self._reconcile()
                saved = self.store.save(self.doc, expected=self.version, key=self.key, encode=self._runs_json.parts)
        except (OSError, StoreError) as exc:
            if isinstance(exc, ConflictError):
                raise
            raise StateWriteFailed(f"cannot write the state file: {_describe_error(exc)}") from exc
        self.version = saved.version
        self._write_shared()
        cost = time.perf_counter() - started
        self.writes += 1
        self.write_interval = min(self.options.max_write_interval_s, max(self.options.min_write_interval_s, 8 * cost))
        self.last_write = time.monotonic()
        self.next_write_at = self.last_write + self.write_interval
        self.dirty = False

    def _write_shared(self) -> None:
        shared = self.shared
        if shared is None or not shared.changed:
            return
        try:
            write_shared(self.store.root, self.key, self.doc.experiment_id, shared.values, durable=self.store.durable)
        except (OSError, SharedStateError) as exc:
            raise StateWriteFailed(f"cannot write the shared run state: {_describe_error(exc)}") from exc
        shared.changed = False

    def _reconcile(self) -> None:
        """Someone else wrote the file: carry on only if it still names us as owner and still runs.

        An outside transition (``mark-stale --force`` from another host, an
        edit by hand) is honoured: the runner stops its workers and leaves the
        file as the other writer left it, rather than overwriting the mark.
        """
        loaded = self.store.load(self.key)
        disk = loaded.model
        owner = disk.owner if isinstance(disk, ExperimentDoc) else None
        if owner is None or owner.pid != self.me.pid or owner.start_ticks != self.me.start_ticks:
            raise OwnershipLost(f"{self.key}: the state file now names another owner")
        if disk.status is not ExperimentStatus.RUNNING:
            last = disk.history[-1] if disk.history else None
            by = f" by {last.who}" + (f" ({last.why})" if last.why else "") if last is not None else ""
            raise OwnershipLost(
                f"{self.key}: marked {disk.status.value}{by} while this runner was running it; stopping, "
                "leaving the file as it is"
            )
        seen = {(h.at, h.to, h.who) for h in self.doc.history}
        extra = [h for h in disk.history if (h.at, h.to, h.who) not in seen]
        if extra:
            self.doc.history = sorted([*self.doc.history, *extra], key=lambda h: h.at)
        self.version = loaded.version

    def _transition(self, target: ExperimentStatus, why: str | None) -> None:
        updated = apply_transition(self.doc, target, who=self.who, why=why)
        assert isinstance(updated, ExperimentDoc)
        self.doc = updated

    # -- the whole run ---------------------------------------------------------
    def _prepare(self) -> None:
        doc = self.doc
        replay = read_spool(self.spool, doc)
        if replay.results:
            found = self._replay(replay.results)
            if found:
                self.log(f"{len(found)} runs finished before the last stop taken from the results spool")
        for skipped in replay.skipped:
            self.log(f"results spool: passed over {skipped}")
        self._replayed_files = replay.files
        self.shared = self._open_shared()
        for rec in doc.runs:
            if rec.status is RunStatus.RUNNING:
                self._runs_json.forget(rec.index)
                rec.status = RunStatus.PENDING
                rec.current_step = None
        self.pending = deque(r.index for r in doc.runs if r.status is RunStatus.PENDING)
        processes = {}
        for index in range(doc.num_processes):
            processes[str(index)] = ProcessInfo(
                process_index=index,
                gpu_id=self._gpu_for(index),
                runs_done=sum(1 for r in doc.runs if r.process_index == index and r.status is RunStatus.COMPLETED),
                runs_failed=sum(1 for r in doc.runs if r.process_index == index and r.status is RunStatus.FAILED),
            )
        doc.processes = processes
        doc.log_path = str(self.log_path)
        self._open_energy()

    def _open_shared(self) -> LocalTable | HubTable:
        """``run.shared``: in the hub with ``--hub`` (unreachable: the run stops, never falls back to the file), else the file's map."""
        if self.options.hub is not None:
            from runtime.runner.errors import RunnerError
            from runtime.runner.hub_shared import HubTable, connect

            assert self.options.host_name is not None
            try:
                hub = connect(self.options.hub)
            except RunnerError as exc:
                raise StateWriteFailed(f"shared run state unavailable: {exc}") from None
            self.log(f"run.shared kept in the hub {hub.address.shown} as {hub.shared_key(self.options.host_name, self.doc.experiment_id)}")
            return HubTable(hub, self.options.host_name, self.doc.experiment_id)
        try:
            stored = read_shared(self.store.root, self.key, self.doc.experiment_id)
        except SharedStateError as exc:
            raise SharedStateError(f"shared run state not usable, left as it is: {exc}") from None
        return LocalTable(stored, limit=MAX_SHARED_BYTES - 1024)

    def _open_energy(self) -> None:
        opened = EnergyMeter.open(self.options.gpus, self.doc.energy, self.log)
        if opened is not None:
            self._energy, self.doc.energy = opened

    def run(self) -> int:
        """Run every pending run; returns the exit code (0, 1, 5 or 130).

        The experiment (100,000 run records at most, built before this) stays
        out of the garbage collector's walks while it runs: each full
        collection walked all of it again for nothing.
        """
        with long_lived_frozen():
            return self._run()

    def _run(self) -> int:
        self._log_fd = open_log(self.log_path, f"attempt {self.doc.attempt}: coordinator pid {os.getpid()}")
        self._inbox.install(self.sel)
        try:
            self._prepare()
            for index in range(self.doc.num_processes):
                self._spawn(index)
            if self.doc.status is not ExperimentStatus.RUNNING:
                self._transition(
                    ExperimentStatus.RUNNING,
                    f"attempt {self.doc.attempt}: {len(self.pending)} runs on {self.doc.num_processes} processes",
                )
            if self.doc.started_at is None:
                self.doc.started_at = _now()
            self.write(force=True)
            discard(self._replayed_files)  # their results are in the state file now
            self._take_signals()
            self._dispatch()
            while any(w.open for w in self.workers.values()):
                for key, _ in self.sel.select(self._timeout()):
                    if key.data is not None:
                        self._on_readable(key.data)
                self._take_signals()
                self._enforce_grace()
                self._dispatch()
                self.write()
            return self._finish()
        except OwnershipLost as exc:
            self.log(str(exc))
            self._kill_all()
            self.outcome_message = str(exc)
            with contextlib.suppress(Exception):
                disk = self.store.load(self.key).model
                if isinstance(disk, ExperimentDoc):
                    self.doc = disk
            return EXIT_CONFLICT
        except StateWriteFailed as exc:
            self._kill_all()
            return self._stop_unwritable(str(exc))
        except BaseException as exc:
            self.log(f"coordinator failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            self._kill_all()
            with contextlib.suppress(Exception):
                self._finish(crash=f"coordinator failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._inbox.restore()
            self.sel.close()
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None
            if self._energy is not None:
                with contextlib.suppress(Exception):
                    self._energy.close()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [self.last_write + self.options.heartbeat_s]
        if self.dirty:
            deadlines.append(self.next_write_at)
        if self.stopping and self.grace_deadline is not None:
            deadlines.append(self.grace_deadline)
            deadlines.append(now + 0.5)
        return max(0.0, min(deadlines) - now)

    def _kill_all(self) -> None:
        for worker in self.workers.values():
            if worker.proc.poll() is None:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
                with contextlib.suppress(Exception):
                    worker.proc.wait(timeout=5)

    def _stop_unwritable(self, problem: str) -> int:
        """The state file cannot be written: leave it interrupted with the reason if at all possible.

        First the whole picture; if that cannot be written either (a full disk
        takes the same bytes again), the last version on disk with just the
        transition, which is smaller and loses only what was never on disk
        (those runs stay pending and run again on resume). Said on stderr,
        since the state file may be unable to say it.
        """
        self.log(problem)
        why = f"stopped: {problem}"
        try:
            self._finish(interrupted_by=why)
        except Exception:  # noqa: BLE001 - e.g. the same disk error, or a doc already completed in memory
            try:
                self._interrupt_on_disk(why)
            except Exception as exc:  # noqa: BLE001 - the last resort says what it could not do
                message = (
                    f"{self.doc.experiment_id}: {problem}; the state file could not be marked interrupted "
                    f"either ({_describe_error(exc)}): it still says running, `expwatch mark-stale` fixes it"
                )
                self.log(message)
                print(f"expwatch runner: {message}", file=sys.stderr)
                self.outcome_message = message
                return EXIT_ERROR
        message = f"{self.doc.experiment_id}: {problem}; left interrupted (resume runs what is not completed)"
        print(f"expwatch runner: {message}", file=sys.stderr)
        self.outcome_message = message
        return EXIT_ERROR

    def _interrupt_on_disk(self, why: str) -> None:
        loaded = self.store.load(self.key)
        disk = loaded.model
        if not isinstance(disk, ExperimentDoc) or loaded.version != self.version:
            raise OwnershipLost(f"{self.key}: the state file changed under the runner")
        for rec in disk.runs:
            if rec.status is RunStatus.RUNNING:
                rec.status = RunStatus.PENDING
                rec.current_step = None
        for info in disk.processes.values():
            if info.status in (ProcessStatus.RUNNING, ProcessStatus.PENDING):
                info.status = ProcessStatus.FAILED
            info.current_run = None
            info.current_step = None
        marked = apply_transition(disk, ExperimentStatus.INTERRUPTED, who=self.who, why=why)
        assert isinstance(marked, ExperimentDoc)
        marked.finished_at = _now()
        self.store.save(marked, expected=loaded.version, key=self.key)
        self.doc = marked

    def _finish(self, crash: str | None = None, interrupted_by: str | None = None) -> int:
        doc = self.doc
        for rec in doc.runs:
            if rec.status is RunStatus.RUNNING:
                self._runs_json.forget(rec.index)
                rec.status = RunStatus.PENDING
                rec.current_step = None
        completed = sum(1 for r in doc.runs if r.status is RunStatus.COMPLETED)
        failed = sum(1 for r in doc.runs if r.status is RunStatus.FAILED)
        total = len(doc.runs)
        left = total - completed - failed
        if crash is not None:
            target, why = ExperimentStatus.FAILED, crash
        elif interrupted_by is not None:
            target, why = ExperimentStatus.INTERRUPTED, f"{interrupted_by}; {completed}/{total} runs completed"
        elif completed == total:
            target, why = ExperimentStatus.COMPLETED, f"all {total} runs completed"
        elif self.stopping and self.stop_status is ExperimentStatus.INTERRUPTED:
            target, why = ExperimentStatus.INTERRUPTED, f"{self.stop_reason}; {completed}/{total} runs completed"
        else:
            parts = []
            if failed:
                parts.append(f"{failed} of {total} runs failed (first: {self.first_failure})")
            if left:
                parts.append(f"{left} runs not run")
            if self.worker_errors:
                counts = Counter(self.worker_errors)  # a worker restarted and failing alike is said once, with a count
                said = [e if counts[e] == 1 else f"{e} ({counts[e]} times)" for e in list(counts)[:3]]
                parts.append("; ".join(said))
            if self.stopping and self.stop_reason:
                parts.insert(0, self.stop_reason)
            target, why = ExperimentStatus.FAILED, "; ".join(parts) or "failed"
        for info in doc.processes.values():
            if info.status in (ProcessStatus.RUNNING, ProcessStatus.PENDING):
                info.status = {
                    ExperimentStatus.COMPLETED: ProcessStatus.COMPLETED,
                    ExperimentStatus.INTERRUPTED: ProcessStatus.INTERRUPTED,
                }.get(target, ProcessStatus.FAILED)
            info.current_run = None
            info.current_step = None
        self._transition(target, why)
        doc = self.doc
        doc.finished_at = _now()
        if target is ExperimentStatus.COMPLETED:
            doc.error_message = None
        self.write(force=True)
        discard_all(self.spool)  # every result that reached the coordinator is in the state file
        self.log(f"{target.value}: {why}")
        self.outcome_message = why
        if target is ExperimentStatus.COMPLETED:
            return EXIT_OK
        if target is ExperimentStatus.INTERRUPTED:
            return EXIT_INTERRUPTED
        return EXIT_ERROR


def _describe_error(exc: BaseException) -> str:
    """An ``OSError`` as its errno text and name (ENOSPC, EIO); anything else as its message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        import errno

        return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return str(exc)
