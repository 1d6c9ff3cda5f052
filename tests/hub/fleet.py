"""Helpers for fleet tests: agents as real processes, experiments owned by real processes, a followed hub."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from runtime.liveness import LocalProbe, identity_of
from state.board import Board
from state.native import ExperimentDoc
from state.sources import Delta, HubSource
from tests.dashboard.conftest import native_doc, write_raw
from tests.runtime.helpers import cli_argv, cli_env


def start_agent(hub_url: str, state_dir: Path, host: str, log: Path, *extra: str, lease: float = 2.0) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cli_argv("agent", str(state_dir), "--hub", hub_url, "--host-name", host, "--lease", str(lease), *extra),
            env=cli_env(), stdout=out, stderr=subprocess.STDOUT,
        )


def running_experiment(state_dir: Path, experiment_id: str, owner_pid: int) -> None:
    """A running expwatch experiment whose coordinator is ``owner_pid`` on this host (alive while it runs)."""
    doc = native_doc(experiment_id, "running", pid=owner_pid)
    doc = doc.model_copy(update={"owner": identity_of(owner_pid), "processes": {}, "last_updated": datetime.now(timezone.utc)})
    write_raw(state_dir, ExperimentDoc.model_validate(doc.model_dump()))


def finished_experiment(state_dir: Path, experiment_id: str, status: str = "completed") -> None:
    write_raw(state_dir, native_doc(experiment_id, status, pid=1, done=4))


class FollowedHub:
    """A hub source driven the way the dashboard drives it: first scan, then ``follow`` in a thread, into a board."""

    def __init__(self, url: str) -> None:
        self.source = HubSource(url, name="fleet")
        self.board = Board(["fleet"])
        self.verdicts_seen: list[tuple[str, str, str]] = []
        #: The board's row keys after each delta, in order: what a reader could have seen.
        self.pictures: list[frozenset[str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FollowedHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _deltas(self) -> Iterator:
        yield from self.source.initial_batches()
        yield from self.source.follow(self._stop)

    def _run(self) -> None:
        probe = LocalProbe()
        for delta in self._deltas():
            verdicts = self.source.judge(delta.upserts.values(), probe, datetime.now(timezone.utc))
            with self._lock:
                self.board.apply("fleet", delta)
                if verdicts:
                    self.board.apply("fleet", Delta(verdicts=verdicts))
                self.pictures.append(frozenset(self.board.rows))
                for key, row in self.board.rows.items():
                    if row.verdict is not None:
                        self.verdicts_seen.append((key, row.verdict.liveness.value, row.verdict.reason))

    def vanished(self, keys: set[str]) -> set[str]:
        """Which of ``keys`` left the board at any moment after all of them were first on it."""
        with self._lock:
            pictures = list(self.pictures)
        first = next((i for i, keys_then in enumerate(pictures) if keys <= keys_then), len(pictures))
        return {k for picture in pictures[first:] for k in keys - picture}

    def rows(self) -> dict:
        with self._lock:
            return dict(self.board.rows)

    def liveness(self, key: str) -> str | None:
        row = self.rows().get(key)
        return row.verdict.liveness.value if row is not None and row.verdict is not None else None
