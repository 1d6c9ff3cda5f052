"""The runner end to end, as real processes: the minimal study, failures, signals, GPUs, logs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from runtime.actions import load_experiment, verdict_for
from state.hashing import source_hash
from state.native import RunStatus
from state.store import StateStore
from state.transitions import ExperimentStatus, ProcessStatus

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    executions,
    expwatch,
    read_doc,
    start_expwatch,
    status_of,
    wait_for,
    write_study,
)


def test_minimal_study_runs_as_it_stands(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "minimal", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "minimal completed: 20/20 runs completed" in done.stdout
    doc = read_doc(state_dir, "minimal")
    assert doc is not None and doc.status is ExperimentStatus.COMPLETED
    assert len(doc.runs) == 20
    assert all(r.status is RunStatus.COMPLETED for r in doc.runs)
    assert [r.fields["square"] for r in doc.runs] == [i * i for i in range(20)]
    assert all(isinstance(r.fields["seconds"], float) and r.fields["seconds"] >= 0 for r in doc.runs)
    assert [r.params for r in doc.runs] == [{"i": i} for i in range(20)]
    assert doc.config == {"model": "demo"} and doc.grid == {"i": list(range(20))}
    assert [h.to for h in doc.history] == [
        ExperimentStatus.INITIALISED, ExperimentStatus.RUNNING, ExperimentStatus.COMPLETED
    ]
    assert doc.finished_at is not None and doc.heartbeat_at is not None


def test_records_steps_owner_resume_spec_and_log(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "meta", "--processes", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = read_doc(state_dir, "meta")
    assert doc is not None
    names = [s.name for s in doc.steps]
    assert names == ["warm_up", "measure"]
    measure = doc.steps[1]
    assert measure.file == str(study.resolve()) and measure.line == 6
    assert measure.source.startswith("def measure(run):")
    assert measure.source_hash == source_hash(measure.source)
    assert doc.owner is not None and doc.owner.role == "coordinator" and doc.owner.start_ticks
    workers = [p.owner for p in doc.processes.values()]
    assert len(workers) == 2 and all(w is not None and w.role == "worker" for w in workers)
    assert {w.pid for w in workers}.isdisjoint({doc.owner.pid})
    assert sum(p.runs_done for p in doc.processes.values()) == 20
    assert all(p.runs_total == p.runs_done and p.status is ProcessStatus.COMPLETED for p in doc.processes.values())
    assert doc.resume is not None and doc.resume.cwd == str(tmp_path)
    assert doc.resume.argv[1:5] == ["-m", "runtime.runner", "--resume", "meta"]
    assert doc.log_path and Path(doc.log_path).is_file()
    assert Path(doc.log_path).parent == (state_dir / ".expwatch" / "logs").resolve()


def test_a_raising_step_fails_its_run_and_the_others_go_on(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="10", FAIL_AT="3,7")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "boom", "-p", "2", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    assert "boom failed: 8/10 runs completed, 2 failed" in done.stdout
    doc = read_doc(state_dir, "boom")
    assert doc is not None and doc.status is ExperimentStatus.FAILED
    failed = [r for r in doc.runs if r.status is RunStatus.FAILED]
    assert [r.params["i"] for r in failed] == [3, 7]
    for rec in failed:
        assert rec.exception is not None and rec.exception.type == "ValueError"
        assert rec.exception.message == f"boom at {rec.params['i']}"
        assert "Traceback (most recent call last)" in rec.exception.traceback
        assert 'raise ValueError(f"boom at {run.params.i}")' in rec.exception.traceback
        assert rec.current_step == "work"
        assert "token" in rec.fields and "square" not in rec.fields  # fields set before the failure stay
    assert sum(r.status is RunStatus.COMPLETED for r in doc.runs) == 8
    assert "2 of 10 runs failed" in (doc.error_message or "")
    assert sum(executions(tmp_path / "exec.log").values()) == 10


def test_fail_fast_stops_at_the_first_failure(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="40", FAIL_AT="2", STEP_MIN_S="0.02", STEP_MAX_S="0.03")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "ff", "--fail-fast", cwd=tmp_path, env=env)
    assert done.returncode == 1
    doc = read_doc(state_dir, "ff")
    assert doc is not None and doc.status is ExperimentStatus.FAILED
    assert (doc.error_message or "").startswith("fail-fast: run 0002 failed: ValueError: boom at 2")
    assert sum(executions(tmp_path / "exec.log").values()) < 40
    assert any(r.status is RunStatus.PENDING for r in doc.runs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_interrupts_at_a_run_boundary_with_exit_130(tmp_path: Path, state_dir: Path, signum: int):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="60", STEP_MIN_S="0.05", STEP_MAX_S="0.08")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "sig", "-p", "2", cwd=tmp_path, env=env)
    try:
        wait_for(lambda: (d := read_doc(state_dir, "sig")) and sum(r.status is RunStatus.COMPLETED for r in d.runs) >= 2,
                 what="a few runs done")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    doc = read_doc(state_dir, "sig")
    assert doc is not None and doc.status is ExperimentStatus.INTERRUPTED
    name = signal.Signals(signum).name
    assert doc.error_message.startswith(f"interrupted by {name}")
    assert doc.history[-1].to is ExperimentStatus.INTERRUPTED and name in (doc.history[-1].why or "")
    # Its workers are interrupted too, not failed.
    assert {p.status for p in doc.processes.values()} == {ProcessStatus.INTERRUPTED}
    # Workers stopped at a run boundary: every run that began has finished and been recorded.
    began = executions(tmp_path / "exec.log")
    completed = {r.id_run for r in doc.runs if r.status is RunStatus.COMPLETED}
    assert set(began) == completed
    assert all(r.status in (RunStatus.COMPLETED, RunStatus.PENDING) for r in doc.runs)
    assert 2 <= len(completed) < 60


def test_gpus_are_spread_over_workers(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="12", STEP_MIN_S="0.01", STEP_MAX_S="0.02")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "gpu", "-p", "3", "--gpus", "4,6",
                    cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    doc = read_doc(state_dir, "gpu")
    assert doc is not None
    assert {k: p.gpu_id for k, p in doc.processes.items()} == {"0": 4, "1": 6, "2": 4}
    for rec in doc.runs:
        expected = doc.processes[str(rec.process_index)].gpu_id
        assert rec.fields["gpu"] == expected and rec.fields["cuda"] == str(expected)
    assert "--gpus" in doc.resume.argv and "4,6" in doc.resume.argv


def test_worker_output_goes_to_the_log_not_the_terminal(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="3", PRINT="1")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "quiet", cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert "by-step" not in done.stdout + done.stderr
    log = (state_dir / ".expwatch" / "logs" / "quiet.log").read_text()
    assert "printed-by-step 0000" in log and "stderr-by-step 0002" in log


def test_live_state_shows_progress_heartbeats_and_live_owners(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="6", STEP_MIN_S="0.6", STEP_MAX_S="0.6")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "live", "-p", "2", cwd=tmp_path, env=env)
    try:
        doc = wait_for(
            lambda: (d := read_doc(state_dir, "live"))
            and len(d.processes) == 2 and all(p.current_step == "work" for p in d.processes.values()) and d,
            what="both workers inside the work step",
        )
        assert doc.status is ExperimentStatus.RUNNING
        running = [r for r in doc.runs if r.status is RunStatus.RUNNING]
        assert len(running) == 2 and {r.current_step for r in running} == {"work"}
        assert {p.current_run for p in doc.processes.values()} == {r.id_run for r in running}
        assert all(p.heartbeat_at is not None and p.runs_total == 3 for p in doc.processes.values())
        _, record = load_experiment(StateStore(state_dir, read_only=True), "live")
        assert verdict_for(record).is_alive
        assert doc.owner.pid == proc.pid
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert status_of(state_dir, "live") == "completed"


def test_a_killed_worker_fails_its_run_and_a_new_worker_carries_on(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="8", STEP_MIN_S="0.3", STEP_MAX_S="0.3")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "wk", cwd=tmp_path, env=env)
    try:
        doc = wait_for(lambda: (d := read_doc(state_dir, "wk")) and "0" in d.processes
                       and d.processes["0"].current_step == "work" and d,
                       what="the worker inside a run")
        victim_pid = doc.processes["0"].owner.pid
        victim_run = doc.processes["0"].current_run
        os.kill(victim_pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    doc = read_doc(state_dir, "wk")
    assert doc.status is ExperimentStatus.FAILED
    failed = [r for r in doc.runs if r.status is RunStatus.FAILED]
    assert [r.id_run for r in failed] == [victim_run]
    assert failed[0].exception.type == "WorkerDied" and "SIGKILL" in failed[0].exception.message
    assert sum(r.status is RunStatus.COMPLETED for r in doc.runs) == 7
    assert doc.processes["0"].owner.pid != victim_pid  # the replacement


def test_a_broken_study_is_one_clear_line(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, "grid = {'i': [1]}\n")
    done = expwatch("run", study, "--state-dir", state_dir)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "defines no `steps`" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(state_dir.glob("*.json")) == []
    missing = expwatch("run", tmp_path / "nope.py", "--state-dir", state_dir)
    assert missing.returncode == 3


def test_workcell_needs_a_single_process(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"workcell": "bench", "devices": []}))
    done = expwatch("run", study, "--state-dir", state_dir, "--workcell", cell, "-p", "2")
    assert done.returncode == 1
    assert "--workcell needs a single worker process" in done.stderr


def test_gpu_energy_counters_are_recorded_from_a_simulated_source(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="4", STEP_MIN_S="0.1", STEP_MAX_S="0.1",
                  EXPWATCH_SIMULATE_GPUS="2")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "energy", "-p", "2", "--gpus", "0,1",
                    cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    doc = read_doc(state_dir, "energy")
    energy = doc.energy
    assert energy is not None and energy.simulated and energy.gpu_ids == [0, 1]
    assert set(energy.start_mj) == set(energy.latest_mj) == {"0", "1"}
    assert all(energy.latest_mj[k] >= energy.start_mj[k] for k in energy.start_mj)
    assert doc.resume.env.get("EXPWATCH_SIMULATE_GPUS") == "2"


def test_workcell_devices_are_handed_to_steps_and_recorded(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, """
        def heat(run):
            run.devices["incubator_block"].set_temperature(run.params.t)
            run.fields.set_to = run.params.t

        steps = [heat]
        grid = {"t": [30.0, 37.0]}
    """)
    cell = tmp_path / "cell.json"
    demo = json.loads((Path(__file__).resolve().parents[2] / "runtime/workcells/demo.json").read_text())
    demo["devices"] = [d for d in demo["devices"] if d["name"] == "incubator_block"]
    cell.write_text(json.dumps(demo))
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "lab", "--workcell", cell, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = read_doc(state_dir, "lab")
    assert [r.fields["set_to"] for r in doc.runs] == [30.0, 37.0]
    block = next(d for d in doc.devices if d.name == "incubator_block")
    # The run stopped the block: PyLabRobot cleared its target, and so does the record.
    assert block.status.value == "offline"
    assert block.details == {"last_command": "set_temperature", "target_c": None}
    assert (state_dir / ".expwatch" / "devices" / "demo.json").is_file()
    assert "[incubator_block]" in (state_dir / ".expwatch" / "logs" / "lab.log").read_text()
    assert "--workcell" in doc.resume.argv


def test_odd_field_values_are_stored_and_unstorable_ones_fail_the_run(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, """
        from pathlib import Path

        class NoRepr:
            def __repr__(self):
                raise RuntimeError("no repr")

        def store(run):
            run.fields.pair = (1, 2)
            run.fields.where = Path("/x/y")
            run.state.phase = "done"
            if run.params.i == 1:
                run.fields.bad = NoRepr()

        steps = [store]
        grid = {"i": [0, 1]}
    """)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "odd", cwd=tmp_path)
    assert done.returncode == 1
    ok, bad = read_doc(state_dir, "odd").runs
    assert ok.status is RunStatus.COMPLETED
    assert ok.fields == {"pair": [1, 2], "where": "/x/y"} and ok.state == {"phase": "done"}
    assert bad.status is RunStatus.FAILED and bad.exception.type == "FieldsNotStorable"
    assert "no repr" in bad.exception.message


def test_after_the_grace_period_busy_workers_are_terminated(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="4", STEP_MIN_S="60", STEP_MAX_S="60")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "grace", "-p", "2", "--grace", "0.3",
                          cwd=tmp_path, env=env)
    try:
        wait_for(lambda: (d := read_doc(state_dir, "grace")) and len(d.processes) == 2
                 and all(p.current_step == "work" for p in d.processes.values()), what="both workers busy")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    doc = read_doc(state_dir, "grace")
    assert doc.status is ExperimentStatus.INTERRUPTED
    assert all(r.status is RunStatus.PENDING for r in doc.runs)
    begun = [r for r in doc.runs if "token" in r.fields]
    assert len(begun) == 2  # the interrupted runs keep the fields they had set
    log = (state_dir / ".expwatch" / "logs" / "grace.log").read_text()
    assert "still busy after the grace period: SIGTERM" in log


def test_a_second_sigint_does_not_wait_for_the_grace_period(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="2", STEP_MIN_S="60", STEP_MAX_S="60")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "twice", cwd=tmp_path, env=env)
    try:
        wait_for(lambda: (d := read_doc(state_dir, "twice")) and "0" in d.processes
                 and d.processes["0"].current_step == "work", what="the worker busy")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping: interrupted by SIGINT" in
                 (state_dir / ".expwatch" / "logs" / "twice.log").read_text(), what="the first SIGINT handled")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=8)  # far less than the default 10 s grace
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert read_doc(state_dir, "twice").status is ExperimentStatus.INTERRUPTED


BIG_STUDY = '''\
def record(run):
    if run.params.i % 997 == 5:
        raise ValueError(f"bad point {run.params.i}")
    run.fields.x = run.params.i * 0.5

steps = [record]
grid = {"i": range(3000)}
'''


def test_a_big_study_s_file_is_exactly_its_model_written_from_the_kept_runs_json(tmp_path: Path, state_dir: Path):
    """Past 1,000 runs the coordinator writes from its blocks of runs' JSON (state/doc_json.py)."""
    study = write_study(tmp_path, BIG_STUDY)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "big", "-p", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    doc = read_doc(state_dir, "big")
    assert doc is not None and doc.status is ExperimentStatus.FAILED
    failed = [r.index for r in doc.runs if r.status is RunStatus.FAILED]
    assert failed == [5, 1002, 1999, 2996]
    assert all(r.fields == {"x": r.index * 0.5} for r in doc.runs if r.status is RunStatus.COMPLETED)
    assert all(r.exception is not None and r.exception.type == "ValueError" for r in doc.runs if r.index in failed)
    assert sum(p.runs_done for p in doc.processes.values()) == 3000 - len(failed)
    assert (state_dir / "big.json").read_bytes() == doc.to_json().encode()
