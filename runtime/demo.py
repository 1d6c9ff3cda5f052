"""The live demo: real runner processes on demo studies, simulated GPUs and lab devices.

``DemoFleet`` writes the studies, a 3-device PyLabRobot workcell and an
llenergymeasure file into a demo directory, starts the runners, SIGKILLs one
mid-run (it goes stale) and SIGINTs another (interrupted), and on ``stop``
ends every process it started, and every runner later launched from the demo's
state directory (a resume from the dashboard starts a detached runner).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from runtime.gpu.simulated import SimulatedGpuSource
from runtime.launcher import reap_in_background
from runtime.liveness import host_facts, probe
from runtime.parent_death import guarded
from state.lem import LemExperimentState, ProcessProgress
from state.record import BrokenRecord, Entry, ExperimentRecord
from state.store import StateStore
from state.telemetry import GpuSnapshot
from state.verdict import judge_owner

DEMO_GPUS = 2
#: After the SIGKILLs, how long the runners are given to be reaped, all together.
REAP_S = 2.0

_STUDY_HEAD = '''"""expwatch demo study: steps that sleep and record fields."""
import random
import time


def load_model(run):
    run.vars.t0 = time.time()
    time.sleep(run.config["step_seconds"] * 0.3)


def measure(run):
    time.sleep(run.config["step_seconds"] * (0.5 + random.random()))
    if run.params.get("batch") == run.config.get("explode_at"):
        raise RuntimeError(f"CUDA out of memory at batch {run.params.batch} (simulated)")
    run.fields.tokens_per_s = round(900 + 35 * run.params.batch + random.random() * 40, 1)
    run.fields["joules_per_token"] = round(0.2 + random.random() * 0.05, 4)


def summarize(run):
    run.fields.seconds = round(time.time() - run.vars.t0, 3)
    run.shared.incr("runs_summarized")
    run.shared["last_batch"] = run.params.batch


steps = [load_model, measure, summarize]
'''

STUDIES = {
    "quick": {"grid": {"batch": [1, 2, 4], "seq": [128, 512]}, "config": {"model": "demo-llm-1b", "step_seconds": 0.1}},
    "raising": {"grid": {"batch": [1, 2, 4, 8, 16, 32]}, "config": {"model": "demo-llm-7b", "step_seconds": 0.4, "explode_at": 16}},
    "long": {"grid": {"batch": [1, 2, 4, 8, 16], "seq": [128, 256, 512, 1024, 2048, 4096]}, "config": {"model": "demo-llm-13b", "step_seconds": 1.0}},
    "live": {"grid": {"batch": [1, 2, 4, 8, 16, 32], "seq": [128, 256, 512, 1024, 2048, 4096, 8192, 16384]}, "config": {"model": "demo-llm-70b", "step_seconds": 1.5}},
}

LAB_STUDY = '''"""expwatch demo lab protocol: heat, shake, read a plate."""
import time


def warm(run):
    if run.params.cycle == 0:
        run.shared["plate_id"] = "ELISA-0042"
    run.devices["heater_shaker"].set_temperature(25 + run.params.cycle)
    time.sleep(0.5)


def shake(run):
    run.devices["heater_shaker"].shake(speed=300 + 50 * run.params.cycle)
    time.sleep(1.0)
    run.devices["heater_shaker"].stop_shaking()


def read(run):
    result = run.devices["plate_reader"].read_absorbance(wavelength=450)
    run.fields.wells_read = len(result) if hasattr(result, "__len__") else 1
    run.shared.incr("wells_read", run.fields.wells_read)
    time.sleep(0.5)


steps = [warm, shake, read]
grid = {"cycle": list(range(40))}
config = {"protocol": "demo-elisa"}
'''

LAB_DEVICES = ("liquid_handler", "heater_shaker", "plate_reader")


def describe_entry(entry: Entry, *, dead: bool) -> str:
    """One line of a demo's summary: id, status (STALE when running with its owner ``dead``), runs."""
    if isinstance(entry, BrokenRecord):
        return f"  {entry.key:<28} broken: {entry.reason}"
    status = "running (STALE: owner dead)" if entry.status == "running" and dead else entry.status
    runs = f"{entry.runs_done}/{entry.runs_failed}/{entry.runs_total} runs ok/failed/all" if entry.runs_total else ""
    return f"  {entry.experiment_id:<28} {status:<28} {runs}"


def _study_text(name: str) -> str:
    spec = STUDIES[name]
    return _STUDY_HEAD + f"grid = {json.dumps(spec['grid'])}\nconfig = {json.dumps(spec['config'])}\n"


@dataclass
class Launch:
    experiment_id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    then: str | None = None
    """'kill' or 'interrupt' after ``after`` seconds."""
    after: float = 0.0
    proc: subprocess.Popen[bytes] | None = None


class DemoFleet:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.state_dir = self.root / ".state"
        self.launches: list[Launch] = []
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.events: list[str] = []

    # -- set-up -------------------------------------------------------------------
    def prepare(self, *, lem_file: bool = True) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        studies = self.root / "studies"
        studies.mkdir(exist_ok=True)
        for name in STUDIES:
            (studies / f"{name}.py").write_text(_study_text(name))
        (studies / "lab.py").write_text(LAB_STUDY)
        from runtime.devices.demo import demo_workcell

        cell = demo_workcell("demo-lab")
        cell["devices"] = [d for d in cell["devices"] if d["name"] in LAB_DEVICES]
        (self.root / "workcell.json").write_text(json.dumps(cell, indent=2))
        if lem_file:
            self._write_llenergymeasure_file()

    def _write_llenergymeasure_file(self) -> None:
        now = datetime.now()
        state = LemExperimentState(
            experiment_id="lem-llama2-7b-batch-sweep",
            status="interrupted",
            config_path="configs/llama2_7b_sweep.yaml",
            config_hash="9f2c41d07ab35e11",
            model_name="meta-llama/Llama-2-7b-hf",
            num_processes=2,
            subprocess_pid=None,
            process_progress={
                0: ProcessProgress(process_index=0, status="completed", gpu_id=0, started_at=now - timedelta(hours=3), completed_at=now - timedelta(hours=2)),
                1: ProcessProgress(process_index=1, status="failed", gpu_id=1, started_at=now - timedelta(hours=3), error_message="NCCL timeout"),
            },
            started_at=now - timedelta(hours=3),
            last_updated=now - timedelta(hours=2),
            error_message="Subprocess no longer running (stale state detected)",
            total_runs=8,
            completed_runs={f"batch_{b}": f"results/batch_{b}.json" for b in (1, 2, 4, 8, 16)},
        )
        (self.state_dir / "lem-llama2-7b-batch-sweep.json").write_text(state.to_json())

    def runner_argv(self, experiment_id: str, study: str, *extra: str) -> list[str]:
        """``expwatch run`` of one of the demo's studies into its state directory."""
        return [
            sys.executable, "-m", "app.cli", "run", str(self.root / "studies" / f"{study}.py"),
            "--state-dir", str(self.state_dir), "--id", experiment_id, *extra,
        ]

    def plan(self) -> None:
        gpus = {"EXPWATCH_SIMULATE_GPUS": str(DEMO_GPUS)}
        self.launches = [
            Launch("quick-baseline", self.runner_argv("quick-baseline", "quick", "--name", "baseline"), gpus),
            Launch("oom-sweep", self.runner_argv("oom-sweep", "raising", "--name", "batch sweep"), gpus),
            Launch("killed-sweep", self.runner_argv("killed-sweep", "long", "--processes", "2", "--gpus", "0,1", "--name", "killed mid-run"), gpus, "kill", 6.0),
            Launch("ctrl-c-sweep", self.runner_argv("ctrl-c-sweep", "long", "--name", "stopped with ctrl-c"), gpus, "interrupt", 8.0),
            Launch("live-sweep", self.runner_argv("live-sweep", "live", "--processes", "2", "--gpus", "0,1", "--name", "70b sweep"), gpus),
            Launch("lab-protocol", self.runner_argv("lab-protocol", "lab", "--workcell", str(self.root / "workcell.json"), "--name", "ELISA plate"), {}),
        ]

    # -- running --------------------------------------------------------------------
    def start(self) -> None:
        here = str(Path(__file__).resolve().parents[1])
        for launch in self.launches:
            env = dict(os.environ, **launch.env)
            env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
            log = open(self.root / f"{launch.experiment_id}.out", "ab")  # noqa: SIM115 - owned by the child
            launch.proc = subprocess.Popen(
                guarded(launch.argv), cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            reap_in_background(launch.proc)
            self.events.append(f"started {launch.experiment_id}: pid {launch.proc.pid}")
        self._timer = threading.Thread(target=self._signals, name="expwatch-demo-signals", daemon=True)
        self._timer.start()

    def _signals(self) -> None:
        started = time.monotonic()
        for launch in sorted((l for l in self.launches if l.then), key=lambda l: l.after):
            if self._stop.wait(max(0.0, launch.after - (time.monotonic() - started))):
                return
            proc = launch.proc
            if proc is None or proc.poll() is not None:
                continue
            if launch.then == "kill":
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()  # reap it: a dead owner, not a zombie child of the demo
                self.events.append(f"SIGKILL {launch.experiment_id} (pid {proc.pid}): it will show as stale")
            else:
                os.kill(proc.pid, signal.SIGINT)
                self.events.append(f"SIGINT {launch.experiment_id} (pid {proc.pid}): it will stop at a run boundary")

    def _state_owner_pids(self) -> list[int]:
        """Owners recorded in the demo's state dir that the stale verdict finds alive on this host."""
        here = host_facts()
        now = datetime.now().astimezone()
        store = StateStore(self.state_dir, read_only=True)
        store.scan()
        pids = []
        for record in store.records():
            for owner in ([record.owner] if record.owner else []) + list(record.workers):
                if owner.host != here.host or owner.pid == os.getpid():
                    continue
                verdict = judge_owner(
                    owner, here=here, evidence=probe(owner.pid), heartbeat_at=None, heartbeat_interval_s=None, now=now
                )
                if verdict.is_alive:
                    pids.append(owner.pid)
        return pids

    def stop(self, grace: float = 5.0) -> list[int]:
        """End everything the demo started; returns the pids that had to be signalled."""
        targets = self.terminate()
        self.finish(targets, time.monotonic() + grace)
        return sorted(targets)

    def terminate(self) -> set[int]:
        """SIGTERM to every runner still there (its process group) and to the owners the state names alive.

        ``stop`` in two halves: a caller with several fleets signals them all, then waits
        for each against one shared deadline (``finish``), on its own thread."""
        self._stop.set()
        targets = {l.proc.pid for l in self.launches if l.proc is not None and l.proc.poll() is None}
        targets.update(self._state_owner_pids())
        for pid in targets:
            _signal_group(pid, signal.SIGTERM)
        return targets

    def finish(self, targets: set[int], deadline: float) -> None:
        """Wait for ``targets`` until ``deadline``, SIGKILL those left, reap the runners: bounded by ``deadline`` + ``REAP_S``."""
        while time.monotonic() < deadline and any(_alive(p) for p in targets):
            for launch in self.launches:
                if launch.proc is not None:
                    launch.proc.poll()
            time.sleep(0.05)
        for pid in targets:
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        reap_within([l.proc for l in self.launches if l.proc is not None], REAP_S)


def reap_within(procs: list[subprocess.Popen[bytes]], seconds: float) -> None:
    """Wait for ``procs`` (signalled already) ``seconds`` in all; one still there is left to its reaper thread."""
    deadline = time.monotonic() + seconds
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))


def _alive(pid: int) -> bool:
    evidence = probe(pid)
    return evidence.exists and not evidence.zombie


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class DemoGpuSource(SimulatedGpuSource):
    """Simulated GPUs whose processes are the demo's live workers, on the GPU each was given."""

    def __init__(self, state_dir: Path, count: int = DEMO_GPUS) -> None:
        super().__init__(count=count)
        self._count = count
        self._store = StateStore(state_dir, read_only=True)
        self._assigned: set[int] = set()

    def sample(self) -> GpuSnapshot:
        self._store.scan()
        live: dict[int, int] = {}
        for record in self._store.records():
            if not isinstance(record, ExperimentRecord) or record.status != "running":
                continue
            for proc in record.processes:
                if proc.pid and proc.gpu_id is not None and proc.status == "running" and _alive(proc.pid):
                    live[proc.pid] = proc.gpu_id % self._count
        for pid in self._assigned - set(live):
            self.unassign(pid)
        for pid, gpu in live.items():
            if pid not in self._assigned:
                self.assign(pid, gpu, memory_bytes=(18 + pid % 7) * 1024**3)
        self._assigned = set(live)
        return super().sample()
