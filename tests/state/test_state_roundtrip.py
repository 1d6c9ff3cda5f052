"""Files written by llenergymeasure (v1, v2) and by expwatch survive load then save unchanged."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from statekit import (
    LEM_V1_FIELDS,
    LEM_V2_FIELDS,
    NAIVE_ISO,
    lem_process,
    lem_text,
    lem_v1,
    lem_v2,
    ordered_pairs,
    transition,
    write_lem,
)

from state import ExperimentStatus, StateFormat, StateStore, parse_state
from state.lem import LemExperimentState, LemV2ExperimentState
from state.native import (
    SCHEMA,
    EnergyInfo,
    ExceptionInfo,
    ExperimentDoc,
    HistoryEntry,
    OwnerIdentity,
    ProcessInfo,
    ResumeSpec,
    RunRecord,
    RunStatus,
    StepInfo,
)
from state.devices import DeviceState, DeviceStatus

T0 = datetime(2025, 3, 14, 9, 0, 0)
T1 = datetime(2025, 3, 14, 9, 5, 7, 250000)
T2 = datetime(2025, 3, 14, 10, 0, 0, 1)


def mixed_progress() -> dict[str, dict]:
    """Four processes in four different states, some datetimes with a fraction, some without."""
    return {
        "0": lem_process(0, "completed", gpu_id=0, started_at=T0, completed_at=T1),
        "1": lem_process(1, "running", gpu_id=1, started_at=T1),
        "2": lem_process(2, "failed", gpu_id=2, started_at=T0, completed_at=T2, error_message="CUDA error: out of memory"),
        "3": lem_process(3, "pending"),
    }


def v1_file(status: ExperimentStatus) -> dict:
    return lem_v1(
        f"llama-3-8b_{status.value}_2025-03-14",
        status=status.value,
        cycle_id=2,
        config_path="configs/llama.yaml",
        config_hash="0123456789abcdef",
        model_name="meta-llama/Meta-Llama-3-8B",
        prompt_args={"dataset": "alpaca", "sample_size": 100, "prompts_file": None, "nested": {"k": [1, 2.5, "é"]}},
        num_processes=4,
        subprocess_pid=4242,
        process_progress=mixed_progress(),
        started_at=T0,
        last_updated=T1,
        error_message="Subprocess exited with code 1" if status is ExperimentStatus.FAILED else None,
        completed_runs={"cfg-a": "results/raw/cfg-a.json"},
        failed_runs={"cfg-b": "timeout"},
        total_runs=3,
    )


@pytest.mark.parametrize("status", list(ExperimentStatus), ids=lambda s: s.value)
def test_v1_text_is_reproduced_exactly_by_the_model(status: ExperimentStatus) -> None:
    text = lem_text(v1_file(status))
    fmt, model = parse_state(text.encode())
    assert fmt is StateFormat.LEM_V1
    assert isinstance(model, LemExperimentState)
    assert model.to_json() == text


@pytest.mark.parametrize("status", list(ExperimentStatus), ids=lambda s: s.value)
def test_v1_load_then_save_keeps_fields_order_and_format(state_dir, status: ExperimentStatus) -> None:
    raw = v1_file(status)
    path = write_lem(state_dir, raw)
    original = path.read_text()
    store = StateStore(state_dir, durable=False)

    loaded = store.load(raw["experiment_id"])
    store.save(loaded.model, expected=loaded.version)

    written = path.read_text()
    after = json.loads(written)
    assert list(after) == list(LEM_V1_FIELDS)
    assert NAIVE_ISO.match(after["last_updated"]), after["last_updated"]
    # Only last_updated is refreshed; every other byte is what llenergymeasure wrote.
    expected = original.replace(f'"last_updated": "{raw["last_updated"]}"', f'"last_updated": "{after["last_updated"]}"')
    assert written == expected
    assert ordered_pairs(written)[:10] == ordered_pairs(original)[:10]
    LemExperimentState.model_validate_json(written)  # extra fields forbidden, as in llenergymeasure


def test_v1_defaults_only_file_round_trips(state_dir) -> None:
    raw = lem_v1("bare")
    text = lem_text(raw)
    assert parse_state(text.encode())[1].to_json() == text


def test_datetime_fraction_is_omitted_only_when_zero() -> None:
    model = LemExperimentState(experiment_id="x", started_at=T0, last_updated=T2)
    dumped = json.loads(model.to_json())
    assert dumped["started_at"] == "2025-03-14T09:00:00"
    assert dumped["last_updated"] == "2025-03-14T10:00:00.000001"


def test_process_progress_order_is_kept() -> None:
    raw = lem_v1("order", process_progress={"1": lem_process(1, "running"), "0": lem_process(0)})
    text = lem_text(raw)
    assert parse_state(text.encode())[1].to_json() == text


def test_transition_writes_a_file_llenergymeasure_still_loads(state_dir) -> None:
    raw = v1_file(ExperimentStatus.RUNNING)
    path = write_lem(state_dir, raw)
    store = StateStore(state_dir, durable=False)
    transition(store, raw["experiment_id"], ExperimentStatus.COMPLETED, why=None)
    after = json.loads(path.read_text())
    assert list(after) == list(LEM_V1_FIELDS)
    assert after["status"] == "completed"
    assert after["process_progress"] == raw["process_progress"]
    LemExperimentState.model_validate_json(path.read_text())


V2_CASES = [(phase, failed) for phase in ("initialising", "measuring", "done") for failed in (False, True)]


@pytest.mark.parametrize(("phase", "failed"), V2_CASES)
def test_v2_load_then_save_round_trips(state_dir, phase: str, failed: bool) -> None:
    raw = lem_v2(
        f"v2-{phase}-{failed}",
        phase=phase,
        failed=failed,
        config_hash="fedcba9876543210",
        error_message="boom" if failed else None,
        started_at=T1,
        last_updated=T2,
        subprocess_pid=777,
    )
    path = write_lem(state_dir, raw)
    original = path.read_text()
    fmt, model = parse_state(original.encode())
    assert fmt is StateFormat.LEM_V2
    assert model.to_json() == original

    store = StateStore(state_dir, durable=False)
    loaded = store.load(raw["experiment_id"])
    store.save(loaded.model, expected=loaded.version)
    after = json.loads(path.read_text())
    assert list(after) == list(LEM_V2_FIELDS)
    assert {k: v for k, v in after.items() if k != "last_updated"} == {
        k: v for k, v in raw.items() if k != "last_updated"
    }
    assert NAIVE_ISO.match(after["last_updated"])
    LemV2ExperimentState.model_validate_json(path.read_text())


def full_native_doc() -> ExperimentDoc:
    tz = timezone(timedelta(hours=2))
    at = datetime(2025, 3, 14, 9, 0, 0, tzinfo=tz)
    owner = OwnerIdentity(host="gpu-01", boot_id="b-1", pid=101, start_time=1741939200.25, start_ticks=9876, role="coordinator")
    return ExperimentDoc(
        experiment_id="sweep/batch-size",
        name="batch size sweep",
        revision=7,
        status=ExperimentStatus.RUNNING,
        attempt=2,
        study_path="studies/sweep.py",
        config={"model": "gpt2", "batch_sizes": [1, 2, 4], "_metadata": {"note": "x"}},
        config_hash="00112233445566ff",
        fields={"n": 3, "ratio": 0.5, "tags": ["a", "b"], "none": None},
        grid={"batch_size": [1, 2, 4]},
        num_processes=2,
        owner=owner,
        heartbeat_at=at,
        heartbeat_interval_s=2.5,
        processes={
            "0": ProcessInfo(process_index=0, status="running", gpu_id=0, owner=owner.model_copy(update={"pid": 102, "role": "worker", "process_index": 0}), runs_total=2, runs_done=1, current_run="r1", current_step="measure", started_at=at, heartbeat_at=at),
            "1": ProcessInfo(process_index=1, status="failed", gpu_id=1, error_message="OOM", completed_at=at),
        },
        runs=[
            RunRecord(id_run="r0", index=0, params={"batch_size": 1}, fields={"tokens": 128}, status=RunStatus.COMPLETED, process_index=0, attempt=1, started_at=at, completed_at=at),
            RunRecord(id_run="r1", index=1, params={"batch_size": 2}, status=RunStatus.RUNNING, process_index=0, current_step="measure", attempt=1, started_at=at),
            RunRecord(id_run="r2", index=2, params={"batch_size": 4}, status=RunStatus.FAILED, exception=ExceptionInfo(type="RuntimeError", message="OOM", traceback="Traceback (most recent call last):\n  ...\nRuntimeError: OOM\n")),
        ],
        steps=[StepInfo(name="measure", qualname="Sweep.measure", file="studies/sweep.py", line=12, source="def measure(self):\n    pass\n", source_hash="abcdef0123456789")],
        resume=ResumeSpec(argv=["python", "-m", "runtime.runner", "studies/sweep.py"], cwd="/srv/exp", env={"CUDA_VISIBLE_DEVICES": "0,1"}),
        log_path=".expwatch/logs/sweep.log",
        energy=EnergyInfo(gpu_ids=[0, 1], start_mj={"0": 1000, "1": 2000}, latest_mj={"0": 5000, "1": 2500}, updated_at=at),
        devices=[DeviceState(name="reader", type="PlateReader", backend="chatterbox", status=DeviceStatus.IN_USE, details={"temperature_c": 25.0}, updated_at=at)],
        history=[
            HistoryEntry(at=at, from_status=None, to=ExperimentStatus.INITIALISED, who="alice"),
            HistoryEntry(at=at, from_status=ExperimentStatus.INITIALISED, to=ExperimentStatus.RUNNING, who="alice", why="start"),
        ],
        created_at=at,
        started_at=at,
        last_updated=at,
    )


def test_native_doc_round_trips_through_the_store(state_dir) -> None:
    doc = full_native_doc()
    store = StateStore(state_dir, durable=False)
    saved = store.create(doc)
    text = saved.path.read_text()
    raw = json.loads(text)
    assert raw["schema"] == SCHEMA
    assert raw["history"][1]["from"] == "initialised"
    assert saved.path.name == "sweep_batch-size.json"

    loaded = store.load("sweep/batch-size")
    assert loaded.format is StateFormat.EXPWATCH
    assert loaded.model == saved.model
    assert loaded.model.to_json() == text
    assert loaded.model.model_copy(update={"last_updated": doc.last_updated}) == doc

    store.save(loaded.model, expected=loaded.version)
    again = json.loads(saved.path.read_text())
    assert {k: v for k, v in again.items() if k != "last_updated"} == {
        k: v for k, v in raw.items() if k != "last_updated"
    }


def test_native_summary_reflects_the_document(state_dir) -> None:
    store = StateStore(state_dir, durable=False)
    store.create(full_native_doc())
    store.scan()
    (record,) = store.records()
    assert (record.runs_done, record.runs_failed, record.runs_total) == (1, 1, 3)
    assert record.energy_joules == 4.5
    assert record.owner is not None and record.owner.pid == 101
    assert [w.pid for w in record.workers] == [102]
    assert record.resumable_by_runner
