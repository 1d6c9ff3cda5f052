"""A worker process: runs the steps of the runs its coordinator assigns, and reports back.

Started by the coordinator as ``python -m runtime.runner.worker`` (``args.WorkerArgs``) with one end of a
socket pair. Its stdout and stderr are the experiment's log file, so nothing a
step prints reaches a terminal. Results are batched (one message every
``--flush`` seconds, or at once when the local queue runs dry), which keeps
the per-run cost to a few microseconds. Only the reporter thread writes to
the socket, so a signal arriving in the main thread never tears a message.

Stdlib only (plus the study itself): workers start fast and stay small.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from runtime.exit_codes import EXIT_ERROR, EXIT_TERMINATED
from runtime.parent_death import set_parent_death_signal
from runtime.runner import protocol
from runtime.runner.args import WorkerArgs
from runtime.runner.shared import SharedMap, SharedStateUnavailable
from runtime.runner.spool_appender import SpoolAppender
from runtime.runner.study import FrozenAttrDict, Run, StudyError, load_study, step_name

#: The most one run's fields and state may take, encoded: a state file holds 64 MiB in all.
MAX_RESULT_BYTES = 1 << 20

#: After the coordinator vanished, give the current step this long to notice before leaving hard.
ORPHAN_EXIT_S = 3.0


class WorkerTerminated(BaseException):
    """SIGTERM (from the coordinator after its grace period, or because it died)."""


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGTERM when the coordinator dies, so no orphan keeps running runs."""
    set_parent_death_signal(signal.SIGTERM)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(EXIT_TERMINATED)


def _exception_info(exc: BaseException) -> dict[str, str]:
    """A step's exception as text that can always be stored (its ``str`` may fail or hold surrogates)."""
    try:
        message = str(exc)
    except Exception as inner:  # noqa: BLE001
        message = f"(str() of the exception failed: {type(inner).__name__})"
    return {
        "type": protocol.safe_text(type(exc).__qualname__),
        "message": protocol.safe_text(message),
        "traceback": protocol.safe_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
    }


class Worker:
    def __init__(
        self,
        sock: socket.socket,
        *,
        study_path: str,
        process_index: int,
        gpu_id: int | None,
        flush_s: float,
        heartbeat_s: float,
        workcell: str | None = None,
        publish_dir: str | None = None,
        spool_fd: int | None = None,
    ):
        self.sock = sock
        self.study_path = study_path
        self.process_index = process_index
        self.gpu_id = gpu_id
        self.flush_s = flush_s
        self.heartbeat_s = heartbeat_s
        self.workcell = workcell
        self.publish_dir = publish_dir
        self.spool_fd = spool_fd
        self._spool_appender: SpoolAppender | None = None
        self.config: FrozenAttrDict = FrozenAttrDict()
        self.experiment_id = ""
        self.attempt = 1
        self.devices: dict[str, Any] = {}

        self._cond = threading.Condition()
        self._queue: deque[list[Any]] = deque()
        self._stop = False
        self._no_more = False
        self._initialised = threading.Event()
        self._coordinator_gone = False

        self._done: deque[bytes] = deque()
        self._current: tuple[int, Run, float] | None = None
        self._need_asked = 0
        self._need_sent = 0
        self._final: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._closing = False
        self._last_cur: bytes | None = None
        self._last_sent = 0.0
        self._send_broken = False
        self._terminated = False

        self._kv_out: deque[bytes] = deque()
        self._kv_replies: dict[int, dict[str, Any]] = {}
        self._kv_seq = 0
        self.shared = SharedMap(self._kv_request)

    # -- threads ---------------------------------------------------------------
    def _read_loop(self) -> None:
        reader = protocol.LineReader()
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self._on_coordinator_gone()
                return
            for msg in reader.feed(data):
                kind = msg.get("t")
                with self._cond:
                    if kind == "init":
                        self.config = FrozenAttrDict(msg.get("config") or {})
                        self.experiment_id = msg.get("experiment_id", "")
                        self.attempt = int(msg.get("attempt", 1))
                        self._initialised.set()
                    elif kind == "assign":
                        self._queue.extend(msg["runs"])
                    elif kind == "stop":
                        self._stop = True
                    elif kind == "done":
                        self._no_more = True
                    elif kind == "kv":
                        self._kv_replies[msg.get("n")] = msg
                    self._cond.notify_all()

    def _on_coordinator_gone(self) -> None:
        with self._cond:
            finished = self._no_more and not self._queue
            self._stop = True
            self._coordinator_gone = True
            self._cond.notify_all()
        self._initialised.set()
        if finished or self._closing:
            return
        # The coordinator died: stop the current step now, and leave hard if it does not listen.
        with contextlib.suppress(Exception):
            _thread.interrupt_main(signal.SIGTERM)
        timer = threading.Timer(ORPHAN_EXIT_S, os._exit, args=(EXIT_TERMINATED,))
        timer.daemon = True
        timer.start()

    def _report_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            closing = self._closing
            while self._kv_out:
                self._send(self._kv_out.popleft())
            try:
                self._flush()
            except Exception:  # never let the reporter die: the coordinator would hear nothing
                traceback.print_exc()
            if closing:
                for message in self._final:
                    self._send(message)
                self._send({"t": "bye"})
                return

    def _send(self, message: dict[str, Any] | bytes) -> None:
        if self._send_broken:
            return
        data = message if isinstance(message, bytes) else protocol.encode(message)
        try:
            self.sock.sendall(data)
            self._last_sent = time.monotonic()
        except OSError:
            self._send_broken = True

    @staticmethod
    def _encode_result(result: dict[str, Any]) -> bytes:
        """A result as JSON; a run whose fields cannot be stored exactly, or are too big, fails, saying why."""
        try:
            data = protocol.dumps(result)
        except Exception as exc:
            why = protocol.unstorable({"fields": result.get("f", {}), "state": result.get("st", {})}, "run")
            problem = why or f"{type(exc).__name__}: {exc}"
        else:
            if len(data) <= MAX_RESULT_BYTES:
                return data
            problem = (
                f"{len(data):,} bytes of fields and state is over the {MAX_RESULT_BYTES // 2**20} MiB "
                "a run may store (keep large results in files and store their paths)"
            )
        error = result.get("e") or {"type": "FieldsNotStorable", "message": "", "traceback": ""}
        message = "the run's fields or state cannot be written exactly: " + problem
        if result.get("e"):
            message = f"{error['message']}; and {message}"
        failed = {k: v for k, v in result.items() if k not in ("f", "st")}
        return protocol.dumps({
            **failed,
            "s": "failed" if result["s"] == "completed" else result["s"],
            "e": {
                "type": protocol.safe_text(str(error["type"])),
                "message": protocol.safe_text(message),
                "traceback": protocol.safe_text(str(error["traceback"])),
            },
        })

    def _flush(self) -> None:
        done = []
        while True:
            try:
                done.append(self._done.popleft())
            except IndexError:
                break
        asked = self._need_asked
        need = asked != self._need_sent
        self._need_sent = asked
        cur_bytes = b"null"
        current = self._current
        if current is not None:
            index, run, t0 = current
            step = run.current_step
            cur_msg: dict[str, Any] = {"i": index, "step": protocol.safe_text(step) if step else step, "t0": t0}
            cur_bytes = protocol.dumps(cur_msg)
            if time.time() - t0 > 2 * self.flush_s:
                # Fields of a long run, readable before it ends; a step may be changing
                # them right now, in which case the next flush sends them.
                with contextlib.suppress(Exception):
                    fields = protocol.dumps({**cur_msg, "f": dict(run.fields)})
                    if len(fields) <= MAX_RESULT_BYTES:
                        cur_bytes = fields
        cur_changed = cur_bytes != self._last_cur
        heartbeat_due = time.monotonic() - self._last_sent >= self.heartbeat_s
        if not (done or need or cur_changed or heartbeat_due):
            return
        self._last_cur = cur_bytes
        results = b",".join(done)
        self._send(
            b'{"t":"batch","at":%s,"done":[%s],"cur":%s,"need":%s}\n'
            % (repr(time.time()).encode(), results, cur_bytes, b"true" if need else b"false")
        )

    def _kv_request(self, op: str, key: str | None, value: Any) -> dict[str, Any]:
        """One ``run.shared`` operation, answered by the coordinator (sent by the reporter thread)."""
        with self._cond:
            self._kv_seq += 1
            n = self._kv_seq
        self._kv_out.append(protocol.encode({"t": "kv", "n": n, "op": op, "k": key, "v": value}))
        self._wake.set()
        with self._cond:
            while n not in self._kv_replies:
                if self._coordinator_gone or self._send_broken:
                    raise SharedStateUnavailable("run.shared: the coordinator is gone")
                self._cond.wait(self.heartbeat_s)
            return self._kv_replies.pop(n)

    # -- the run loop ----------------------------------------------------------
    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._terminated:
            return
        self._terminated = True
        raise WorkerTerminated()

    def serve(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        reader = threading.Thread(target=self._read_loop, name="expwatch-reader", daemon=True)
        reporter = threading.Thread(target=self._report_loop, name="expwatch-reporter", daemon=True)
        reader.start()
        self._send({"t": "hello", "pid": os.getpid()})
        code = 0
        try:
            try:
                study = load_study(self.study_path)
            except StudyError as exc:
                self._final.append({"t": "fatal", "error": str(exc), "traceback": traceback.format_exc()})
                return EXIT_ERROR
            self._initialised.wait()
            if self._coordinator_gone:
                return EXIT_TERMINATED
            reporter.start()
            with self._devices_session():
                self._loop(study.steps)
        except WorkerTerminated:
            code = EXIT_TERMINATED
        except Exception as exc:  # a failure of the worker itself, not of a step
            self._final.append(
                {"t": "fatal", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            )
            code = EXIT_ERROR
        finally:
            self._terminated = True
            self._close_spool()
            self._closing = True
            self._wake.set()
            if reporter.is_alive():
                reporter.join(timeout=5.0)
            else:
                for message in self._final:
                    self._send(message)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        return code

    @contextlib.contextmanager
    def _devices_session(self):
        if not self.workcell:
            yield
            return
        from runtime.devices.session import open_workcell

        with open_workcell(
            self.workcell,
            publish_dir=self.publish_dir,
            experiment_id=self.experiment_id,
            log=sys.__stdout__,
        ) as session:
            self.devices = dict(session.devices)
            yield

    def _next(self) -> list[Any] | None:
        asked = False
        while True:
            with self._cond:
                if self._stop:
                    return None
                if self._queue:
                    return self._queue.popleft()
                if self._no_more:
                    return None
                if asked:
                    if not self._cond.wait(self.heartbeat_s):
                        asked = False
                    continue
            self._need_asked += 1
            self._wake.set()
            asked = True

    def _loop(self, steps: list[Any]) -> None:
        names = [step_name(s) for s in steps]
        while True:
            item = self._next()
            if item is None:
                return
            index, id_run, params = item
            run = Run(
                id_run=id_run,
                index=index,
                params=params,
                config=self.config,
                gpu_id=self.gpu_id,
                process_index=self.process_index,
                experiment_id=self.experiment_id,
                attempt=self.attempt,
                devices=self.devices,
                shared=self.shared,
            )
            t0 = time.time()
            self._current = (index, run, t0)
            status = "completed"
            error = None
            try:
                for name, step in zip(names, steps):
                    run.current_step = name
                    step(run)
            except WorkerTerminated:
                self._current = None
                self._done.append(self._encode_result(self._result(index, id_run, run, "interrupted", None, t0)))
                raise
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                run.exception = exc
                status = "failed"
                error = _exception_info(exc)
            self._current = None
            if status == "completed":
                self._finished(self._completed_result(index, id_run, run, t0))
            else:
                self._finished(self._encode_result(self._result(index, id_run, run, status, error, t0)))

    def _finished(self, line: bytes) -> None:
        """A finished run's result: first on disk (the spool), then counted as done and queued to send."""
        if self.spool_fd is not None:
            self._spool(line + b"\n")
        self._done.append(line)

    def _spool(self, data: bytes) -> None:
        """Append one line whole, or cut what part of it went in (a full disk) and spool no more."""
        fd = self.spool_fd
        assert fd is not None
        appender = self._spool_appender
        try:
            if appender is None:
                appender = self._spool_appender = SpoolAppender(fd)
            appender.append(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                if appender is not None:  # no torn line, and the space goes back to the state file
                    appender.close()
            self.spool_fd = None
            self._spool_appender = None
            print(f"expwatch worker {self.process_index}: results spool not written ({exc.strerror or exc}); "
                  "a kill of the coordinator now loses the runs it has not yet stored", file=sys.stderr)

    def _close_spool(self) -> None:
        """Cut the spool's padding after its last line (a killed worker leaves it, and the replay skips it)."""
        appender, self._spool_appender = self._spool_appender, None
        if appender is not None:
            with contextlib.suppress(OSError):
                appender.close()

    def _completed_result(self, index: int, id_run: str, run: Run, t0: float) -> bytes:
        """A completed run's result, the common case, formatted around its encoded parts.

        Byte for byte what ``_encode_result`` gives for it (``repr`` of a float is
        JSON's, and ``time.time()`` is finite), 3.3 µs instead of 5.4 µs a run:
        encoding a nine-key dict was the worker's largest cost at 100,000 runs.
        Whatever the strict encoder refuses, or a result over the limit, goes the
        general way, which says why the run failed.
        """
        t1 = time.time()
        try:
            encode = protocol.dumps
            data = b'{"i":%d,"r":%s,"s":"completed",%s%s"t0":%r,"t1":%r}' % (
                index, encode(id_run),
                b'"f":%s,' % encode(run.fields) if run.fields else b"",
                b'"st":%s,' % encode(run.state) if run.state else b"",
                t0, t1,
            )
        except Exception:  # noqa: BLE001 - explained by the general path
            data = b""
        if data and len(data) <= MAX_RESULT_BYTES:
            return data
        return self._encode_result(self._result(index, id_run, run, "completed", None, t0, t1))

    @staticmethod
    def _result(
        index: int, id_run: str, run: Run, status: str, error: dict[str, str] | None, t0: float,
        t1: float | None = None,
    ) -> dict[str, Any]:
        """A finished run's result; empty fields and state, no error and no step are left out (``protocol``)."""
        result: dict[str, Any] = {"i": index, "r": id_run, "s": status}
        if run.fields:
            result["f"] = run.fields
        if run.state:
            result["st"] = run.state
        if error is not None:
            result["e"] = error
        result["t0"] = t0
        result["t1"] = time.time() if t1 is None else t1
        if status != "completed" and run.current_step:
            result["step"] = protocol.safe_text(run.current_step)
        return result

def main(argv: list[str] | None = None) -> int:
    args = WorkerArgs.parse(argv)
    _die_with_parent(args.parent)
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    worker = Worker(
        sock,
        study_path=args.study,
        process_index=args.index,
        gpu_id=args.gpu,
        flush_s=args.flush_s,
        heartbeat_s=args.heartbeat_s,
        workcell=args.workcell,
        publish_dir=args.publish_dir,
        spool_fd=args.spool_fd,
    )
    code = worker.serve()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
