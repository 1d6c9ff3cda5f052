"""A write-back changes what the action changes and nothing else, or refuses with the reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from runtime.actions import mark_stale_experiment, plan_mark_stale
from state.store import StateStore, StoreError
from state.writeback import write_back

from tests.runtime.helpers import expwatch, make_native, unused_pid, write_study

#: Values a model cannot hold exactly: they read as inf, as the nearest float, as a lone
#: surrogate, and (the integer) fine, but each must come back out as these very bytes.
AWKWARD = {
    "big": "1e999",
    "precise": "0.12345678901234567890123",
    "tiny": "-0.0000000000000000000000000001e-300",
    "bad": '"\\udc80 and \\ud800"',
    "long": "123456789012345678901234567890123456789",
}


def _awkward_lem(state_dir: Path, experiment_id: str) -> Path:
    args = ",\n    ".join(f'"{k}": {v}' for k, v in AWKWARD.items())
    text = (
        "{\n"
        f'  "experiment_id": {experiment_id},\n'
        '  "status": "running",\n'
        f'  "subprocess_pid": {unused_pid()},\n'
        f'  "prompt_args": {{\n    {args}\n  }},\n'
        '  "started_at": "2025-03-01T11:00:00",\n'
        '  "last_updated": "2025-03-01T12:00:00"\n'
        "}\n"
    )
    path = state_dir / "awkward.json"
    path.write_text(text, encoding="utf-8")
    return path


def _values(path: Path, *keys: str) -> dict[str, str]:
    """The text of each top-level key's value in a two-space-indented JSON object."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for key in keys:
            if line.startswith(f'    "{key}": '):
                found[key] = line.split(": ", 1)[1].rstrip(",")
    return found


@pytest.mark.parametrize("experiment_id", ['"awkward"', '"run\\udc80"'])
def test_mark_stale_keeps_every_value_it_does_not_change(tmp_path: Path, experiment_id: str):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = _awkward_lem(state_dir, experiment_id)
    head = path.read_text(encoding="utf-8").splitlines()[1]
    store = StateStore(state_dir)
    result = mark_stale_experiment(store, "awkward")
    assert (result.from_status, result.to_status) == ("running", "interrupted")
    assert _values(path, *AWKWARD) == AWKWARD
    assert path.read_text(encoding="utf-8").splitlines()[1] == head  # the id, escapes and all
    raw = json.loads(path.read_bytes())
    assert raw["status"] == "interrupted" and raw["error_message"] and raw["last_updated"] != "2025-03-01T12:00:00"
    assert set(raw) == {"experiment_id", "status", "subprocess_pid", "prompt_args", "started_at",
                        "last_updated", "error_message"}


def test_mark_stale_through_the_cli_keeps_the_values(tmp_path: Path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = _awkward_lem(state_dir, '"awkward"')
    done = expwatch("mark-stale", "awkward", "--state-dir", state_dir)
    assert done.returncode == 0, done.stderr
    assert _values(path, *AWKWARD) == AWKWARD


def test_a_native_file_edited_by_hand_keeps_its_values_through_a_mark(tmp_path: Path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    study = write_study(tmp_path)
    make_native(state_dir, study, "edited", status="running", completed=range(3))
    path = state_dir / "edited.json"
    text = path.read_text().replace('"square": -1', '"square": 1e999', 1)
    path.write_text(text)
    plan = plan_mark_stale(StateStore(state_dir), "edited")
    assert plan.allowed
    mark_stale_experiment(StateStore(state_dir), "edited")
    after = path.read_text()
    assert '"square": 1e999' in after and '"status": "interrupted"' in after


def test_a_change_that_cannot_be_written_exactly_is_refused_and_nothing_is_written(tmp_path: Path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = _awkward_lem(state_dir, '"awkward"')
    before = path.read_bytes()
    store = StateStore(state_dir)
    with pytest.raises(StoreError, match=r"refusing to write a value that would not read back the same .*nan"):
        store.update("awkward", lambda m: m.model_copy(update={"prompt_args": {"x": math.nan}}))
    assert path.read_bytes() == before
    assert not list((state_dir / ".expwatch" / "tmp").glob("*"))


def test_write_back_keeps_the_layout_of_the_file():
    from state.lem import LemExperimentState
    from state.transitions import ExperimentStatus

    model = LemExperimentState(experiment_id="x", status="running")
    compact = model.model_dump_json().encode()
    after = model.model_copy(update={"status": ExperimentStatus.INTERRUPTED})
    out = write_back(compact, model, after)
    assert b"\n" not in out and json.loads(out)["status"] == "interrupted"
    indented = model.to_json().encode()
    assert write_back(indented, model, after) == after.to_json().encode()
