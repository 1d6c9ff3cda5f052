"""The runner's internal command lines, each defined once: built and parsed by the same dataclass.

``ResumeArgs`` is ``python -m runtime.runner --resume ID ...``, recorded in an
experiment's ``ResumeSpec`` and launched by ``expwatch resume``.
``WorkerArgs`` is ``python -m runtime.runner.worker ...``, started by the
coordinator. Stdlib only: worker processes parse theirs here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.runner.errors import RunnerError

RUNNER_MODULE = "runtime.runner"
WORKER_MODULE = "runtime.runner.worker"
#: ``--hub env`` in a recorded resume command: take the URL from ``$EXPWATCH_HUB`` when resuming.
HUB_FROM_ENV = "env"


def hub_for_resume(url: str | None) -> str | None:
    """How a resume command records the hub: the URL, or ``HUB_FROM_ENV`` when it holds a password."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        secret = parts.password is not None or "password=" in parts.query
    except ValueError:
        secret = True
    return HUB_FROM_ENV if secret else url


def parse_gpus(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, int):
        items = [value]
    else:
        items = list(value)
    try:
        gpus = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise RunnerError(f"--gpus takes integers separated by commas, got {value!r}") from None
    if any(g < 0 for g in gpus):
        raise RunnerError("GPU ids cannot be negative")
    return gpus


@dataclass(frozen=True)
class ResumeArgs:
    """Resume an experiment handed over by ``expwatch resume``."""

    experiment_id: str
    state_dir: Path
    gpus: tuple[int, ...] = ()
    fail_fast: bool = False
    grace_s: float | None = None
    heartbeat_s: float | None = None
    workcell: Path | None = None
    hub: str | None = None
    """The hub URL of ``run.shared``, or ``HUB_FROM_ENV``: the URL holds a password, which no state file may."""
    host_name: str | None = None

    def to_argv(self, python: str | None = None) -> list[str]:
        argv = [
            python or sys.executable,
            "-m",
            RUNNER_MODULE,
            "--resume",
            self.experiment_id,
            "--state-dir",
            str(Path(self.state_dir).resolve()),
        ]
        if self.gpus:
            argv += ["--gpus", ",".join(str(g) for g in self.gpus)]
        if self.fail_fast:
            argv.append("--fail-fast")
        if self.grace_s is not None:
            argv += ["--grace", f"{self.grace_s:g}"]
        if self.heartbeat_s is not None:
            argv += ["--heartbeat", f"{self.heartbeat_s:g}"]
        if self.workcell is not None:
            argv += ["--workcell", str(Path(self.workcell).resolve())]
        if self.hub is not None:
            argv += ["--hub", self.hub]
        if self.host_name is not None:
            argv += ["--host-name", self.host_name]
        return argv

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=f"python -m {RUNNER_MODULE}",
            description="Resume an expwatch experiment handed over by `expwatch resume` (internal).",
        )
        parser.add_argument("--resume", required=True, metavar="ID")
        parser.add_argument("--state-dir", required=True, type=Path)
        parser.add_argument("--gpus", default=None)
        parser.add_argument("--fail-fast", action="store_true")
        parser.add_argument("--grace", type=float, default=None)
        parser.add_argument("--heartbeat", type=float, default=None)
        parser.add_argument("--workcell", default=None)
        parser.add_argument("--hub", default=None, help=f"the hub URL of run.shared; {HUB_FROM_ENV!r}: $EXPWATCH_HUB's")
        parser.add_argument("--host-name", default=None)
        return parser

    @classmethod
    def from_command(cls, argv: Sequence[str]) -> tuple[ResumeArgs, str] | None:
        """A recorded command line read back: (its arguments, its Python), or None when it is not ours."""
        if len(argv) < 4 or list(argv[1:3]) != ["-m", RUNNER_MODULE]:
            return None
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # argparse prints its usage before it exits
                return cls.parse(argv[3:]), argv[0]
        except (SystemExit, RunnerError):
            return None

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> ResumeArgs:
        """Usage errors exit as argparse does; a bad ``--gpus`` raises ``RunnerError``."""
        ns = cls.parser().parse_args(argv)
        return cls(
            experiment_id=ns.resume,
            state_dir=ns.state_dir,
            gpus=parse_gpus(ns.gpus) if ns.gpus else (),
            fail_fast=ns.fail_fast,
            grace_s=ns.grace,
            heartbeat_s=ns.heartbeat,
            workcell=Path(ns.workcell) if ns.workcell else None,
            hub=ns.hub,
            host_name=ns.host_name,
        )


@dataclass(frozen=True)
class WorkerArgs:
    """One worker process: its end of the socket pair, its study, its index and GPU."""

    fd: int
    study: str
    index: int
    gpu: int | None = None
    parent: int = 0
    flush_s: float = 0.05
    heartbeat_s: float = 2.0
    workcell: str | None = None
    publish_dir: str | None = None
    spool_fd: int | None = None

    def to_argv(self, python: str | None = None) -> list[str]:
        argv = [
            python or sys.executable, "-m", WORKER_MODULE,
            "--fd", str(self.fd),
            "--study", self.study,
            "--index", str(self.index),
            "--parent", str(self.parent),
            "--flush", f"{self.flush_s:g}",
            "--heartbeat", f"{self.heartbeat_s:g}",
        ]
        if self.gpu is not None:
            argv += ["--gpu", str(self.gpu)]
        if self.workcell is not None:
            argv += ["--workcell", self.workcell]
        if self.publish_dir is not None:
            argv += ["--publish-dir", self.publish_dir]
        if self.spool_fd is not None:
            argv += ["--spool-fd", str(self.spool_fd)]
        return argv

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
        parser.add_argument("--fd", type=int, required=True)
        parser.add_argument("--study", required=True)
        parser.add_argument("--index", type=int, required=True)
        parser.add_argument("--gpu", type=int, default=None)
        parser.add_argument("--parent", type=int, default=0)
        parser.add_argument("--flush", type=float, default=0.05)
        parser.add_argument("--heartbeat", type=float, default=2.0)
        parser.add_argument("--workcell", default=None)
        parser.add_argument("--publish-dir", default=None)
        parser.add_argument("--spool-fd", type=int, default=None)
        return parser

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> WorkerArgs:
        ns = cls.parser().parse_args(argv)
        return cls(
            fd=ns.fd,
            study=ns.study,
            index=ns.index,
            gpu=ns.gpu,
            parent=ns.parent,
            flush_s=ns.flush,
            heartbeat_s=ns.heartbeat,
            workcell=ns.workcell,
            publish_dir=ns.publish_dir,
            spool_fd=ns.spool_fd,
        )
