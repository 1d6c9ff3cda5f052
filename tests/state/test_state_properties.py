"""Property tests: random states round-trip through the store; transitions obey the table."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statekit import transition

from state import (
    ExperimentRecord,
    ExperimentStatus,
    InvalidStateTransitionError,
    ProcessStatus,
    StateStore,
    UnsafePathError,
    can_transition_to,
    sanitize_experiment_id,
)
from state.lem import LEM_PROCESS_STATUSES, LemExperimentState, LemV2ExperimentState, ProcessProgress
from state.mutations import apply_transition, current_status
from state.native import (
    ExceptionInfo,
    ExperimentDoc,
    HistoryEntry,
    OwnerIdentity,
    ProcessInfo,
    RunRecord,
    RunStatus,
)
from state.paths import unsafe_id_reason
from state.transitions import ExperimentPhase, phase_to_status

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(max_size=20)
opt_text = st.none() | text
ids = st.text(min_size=1, max_size=30).filter(
    lambda s: unsafe_id_reason(s) is None and not sanitize_experiment_id(s).startswith(".")
)
naive_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
opt_naive = st.none() | naive_times
zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))])
aware_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones)
opt_aware = st.none() | aware_times
hex16 = st.none() | st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@st.composite
def v1_states(draw) -> LemExperimentState:
    count = draw(st.integers(0, 4))
    progress = {
        i: ProcessProgress(
            process_index=i,
            status=draw(st.sampled_from(LEM_PROCESS_STATUSES)),
            gpu_id=draw(st.none() | st.integers(0, 7)),
            started_at=draw(opt_naive),
            completed_at=draw(opt_naive),
            error_message=draw(opt_text),
        )
        for i in range(count)
    }
    return LemExperimentState(
        experiment_id=draw(ids),
        status=draw(st.sampled_from(ExperimentStatus)),
        cycle_id=draw(st.integers(0, 10_000)),
        config_path=draw(opt_text),
        config_hash=draw(hex16),
        model_name=draw(opt_text),
        prompt_args=draw(json_objects),
        num_processes=draw(st.integers(1, 8)),
        subprocess_pid=draw(st.none() | st.integers(1, 4_194_304)),
        process_progress=progress,
        started_at=draw(opt_naive),
        last_updated=draw(naive_times),
        error_message=draw(opt_text),
        completed_runs=draw(st.dictionaries(text, text, max_size=3)),
        failed_runs=draw(st.dictionaries(text, text, max_size=3)),
        total_runs=draw(st.integers(0, 1000)),
    )


@st.composite
def v2_states(draw) -> LemV2ExperimentState:
    return LemV2ExperimentState(
        experiment_id=draw(ids),
        phase=draw(st.sampled_from(ExperimentPhase)),
        failed=draw(st.booleans()),
        config_hash=draw(hex16),
        error_message=draw(opt_text),
        started_at=draw(opt_naive),
        last_updated=draw(naive_times),
        subprocess_pid=draw(st.none() | st.integers(1, 4_194_304)),
    )


owners = st.builds(
    OwnerIdentity,
    host=st.text(min_size=1, max_size=10),
    boot_id=opt_text,
    pid=st.integers(1, 4_194_304),
    start_time=st.none() | st.floats(0, 4e9),
    start_ticks=st.none() | st.integers(0, 2**40),
    role=st.sampled_from(["coordinator", "worker"]),
    process_index=st.none() | st.integers(0, 7),
)


@st.composite
def native_docs(draw) -> ExperimentDoc:
    runs = [
        RunRecord(
            id_run=f"r{i}",
            index=i,
            params=draw(json_objects),
            fields=draw(json_objects),
            status=draw(st.sampled_from(RunStatus)),
            exception=draw(st.none() | st.builds(ExceptionInfo, type=text, message=text, traceback=text)),
            attempt=draw(st.integers(0, 5)),
            started_at=draw(opt_aware),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    processes = {
        str(i): ProcessInfo(
            process_index=i,
            status=draw(st.sampled_from(ProcessStatus)),
            owner=draw(st.none() | owners),
            runs_done=draw(st.integers(0, 9)),
            heartbeat_at=draw(opt_aware),
        )
        for i in range(draw(st.integers(0, 3)))
    }
    history = [
        HistoryEntry(at=draw(aware_times), from_status=draw(st.none() | st.sampled_from(ExperimentStatus)), to=draw(st.sampled_from(ExperimentStatus)), who=draw(text), why=draw(opt_text))
        for _ in range(draw(st.integers(0, 3)))
    ]
    return ExperimentDoc(
        experiment_id=draw(ids),
        name=draw(opt_text),
        revision=draw(st.integers(0, 100)),
        status=draw(st.sampled_from(ExperimentStatus)),
        attempt=draw(st.integers(1, 5)),
        config=draw(json_objects),
        config_hash=draw(hex16),
        fields=draw(json_objects),
        num_processes=draw(st.integers(1, 4)),
        owner=draw(st.none() | owners),
        heartbeat_at=draw(opt_aware),
        heartbeat_interval_s=draw(st.floats(0.1, 60)),
        processes=processes,
        runs=runs,
        history=history,
        created_at=draw(opt_aware),
        last_updated=draw(aware_times),
        error_message=draw(opt_text),
    )


any_state = v1_states() | v2_states() | native_docs()


@FAST
@given(model=any_state)
def test_random_states_round_trip_through_the_store(model) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = StateStore(root, durable=False)
        saved = store.save(model)
        assert saved.path.parent == root
        assert saved.model.model_copy(update={"last_updated": model.last_updated}) == model

        loaded = store.load(model.experiment_id)
        assert loaded.model == saved.model
        assert loaded.version == saved.version
        assert saved.path.read_text() == saved.model.to_json()

        again = store.save(loaded.model, expected=loaded.version)
        assert again.model.model_copy(update={"last_updated": loaded.model.last_updated}) == loaded.model

        fresh = StateStore(root, read_only=True)
        fresh.scan()
        (record,) = fresh.entries.values()
        assert isinstance(record, ExperimentRecord)
        assert record.experiment_id == model.experiment_id
        assert record.status == current_status(model).value


@FAST
@given(
    model=v1_states() | native_docs(),
    targets=st.lists(st.sampled_from(ExperimentStatus), max_size=12),
)
def test_transitions_follow_the_table(model, targets) -> None:
    allowed_steps = 0
    for target in targets:
        before = current_status(model)
        if can_transition_to(before, target):
            model = apply_transition(model, target, who="tester", why="because")
            assert current_status(model) is target
            allowed_steps += 1
        else:
            with pytest.raises(InvalidStateTransitionError) as raised:
                apply_transition(model, target, who="tester", why="because")
            assert (raised.value.from_state, raised.value.to_state) == (before, target)
            assert current_status(model) is before
    if isinstance(model, ExperimentDoc):
        made = model.history[len(model.history) - allowed_steps :] if allowed_steps else []
        assert all(can_transition_to(h.from_status, h.to) for h in made)


@FAST
@given(model=v2_states(), target=st.sampled_from(ExperimentStatus))
def test_v2_changes_never_break_the_table(model, target) -> None:
    before = current_status(model)
    try:
        after = apply_transition(model, target, who="tester", why="stale")
    except InvalidStateTransitionError:
        return
    assert can_transition_to(before, current_status(after))
    assert after.failed and after.phase is model.phase
    assert phase_to_status(after.phase, after.failed) is ExperimentStatus.FAILED


@settings(max_examples=15, deadline=None)
@given(model=v1_states(), targets=st.lists(st.sampled_from(ExperimentStatus), min_size=1, max_size=6))
def test_store_transitions_refuse_exactly_what_the_table_forbids(model, targets) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = StateStore(root, durable=False)
        saved = store.save(model)
        for target in targets:
            before_bytes = saved.path.read_bytes()
            before = LemExperimentState.model_validate_json(before_bytes).status
            if can_transition_to(before, target):
                transition(store, model.experiment_id, target, why="t")
                assert LemExperimentState.model_validate_json(saved.path.read_bytes()).status is target
            else:
                with pytest.raises(InvalidStateTransitionError):
                    transition(store, model.experiment_id, target, why="t")
                assert saved.path.read_bytes() == before_bytes


@pytest.mark.parametrize("ident", [".hidden", "x" * 251, "é" * 130])
def test_ids_that_give_no_visible_file_name_are_refused(tmp_path: Path, ident: str) -> None:
    store = StateStore(tmp_path, durable=False)
    with pytest.raises(UnsafePathError):
        store.save(LemExperimentState(experiment_id=ident))
    assert list(tmp_path.glob("*.json")) == []


def test_longest_id_that_fits_round_trips(tmp_path: Path) -> None:
    ident = "é" * 125  # 250 bytes + ".json" = 255
    store = StateStore(tmp_path, durable=False)
    store.save(LemExperimentState(experiment_id=ident))
    assert store.load(ident).model.experiment_id == ident
