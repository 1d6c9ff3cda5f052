"""Config hashes shared with llenergymeasure, and ids that must never leave the state directory."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statekit import lem_text, lem_v1, tree_state, write_lem

from state import (
    BrokenRecord,
    ExperimentNotFound,
    StateStore,
    UnsafePathError,
    compute_config_hash,
    sanitize_experiment_id,
)
from state.lem import LemExperimentState
from state.native import ExperimentDoc
from state.store import BrokenExperimentError

# Digests computed outside Python (printf '%s' '<canonical text>' | sha256sum), first 16 hex.
KNOWN_HASHES = [
    ({"b": [1, 2, {"c": None}], "a": 1}, "8769c7e1276933a1"),
    (
        {
            "model_name": "gpt2",
            "num_processes": 2,
            "fp_precision": "float16",
            "batching_options": {"dynamic": False, "batch_size": 8},
            "experiment_id": "dropped",
            "_metadata": {"effective_config": {"dropped": True}},
        },
        "3adaf8fc57b55c30",
    ),
    ({"experiment_id": "only", "_metadata": {}}, "44136fa355b3678a"),
    # default=str for values JSON cannot hold; non-ASCII escaped as json.dumps does by default
    (
        {"when": datetime(2025, 1, 2, 3, 4, 5), "path": PurePosixPath("/tmp/x.yaml"), "name": "café"},
        "c808c438be26b59b",
    ),
    # only top-level experiment_id/_metadata are dropped
    ({"x": 1.5, "nested": {"experiment_id": "keep", "_metadata": 1}}, "0ae08c48d26503a9"),
]


@pytest.mark.parametrize(("config", "expected"), KNOWN_HASHES)
def test_config_hash_matches_known_values(config: dict, expected: str) -> None:
    assert compute_config_hash(config) == expected


def test_config_hash_ignores_key_order_and_volatile_fields() -> None:
    a = {"x": 1, "y": {"p": 1, "q": 2}}
    b = {"y": {"q": 2, "p": 1}, "x": 1, "experiment_id": "e1", "_metadata": {"t": 1}}
    assert compute_config_hash(a) == compute_config_hash(b)
    assert compute_config_hash(a) != compute_config_hash({**a, "x": 2})
    assert len(compute_config_hash(a)) == 16 and int(compute_config_hash(a), 16) >= 0


# -- ids and paths ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "stem"),
    [
        ("../../x", ".._.._x"),
        ("/etc/passwd", "_etc_passwd"),
        ("a/../../b", "a_.._.._b"),
        ("exp 1:2*?", "exp_1_2__"),
        ("x\x00y\\z", "x_y_z"),
        ("llama-3.1_8B", "llama-3.1_8B"),
        ("café-ü", "café-ü"),  # llenergymeasure keeps letters of any script (str.isalnum)
    ],
)
def test_sanitize_experiment_id(raw: str, stem: str) -> None:
    assert sanitize_experiment_id(raw) == stem


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_sanitized_ids_are_plain_names(raw: str) -> None:
    stem = sanitize_experiment_id(raw)
    assert len(stem) == len(raw)
    assert "/" not in stem and "\x00" not in stem
    assert all(c.isalnum() or c in "_-." for c in stem)


HOSTILE_IDS = ["../../x", "/etc/passwd", "a/../../b", "..", ".", "../outside", "~/x", "x/../../../../tmp/evil"]


@pytest.fixture
def nested_state(tmp_path: Path) -> tuple[Path, Path]:
    """A state dir two levels down, with real experiment files planted above it."""
    outside = tmp_path
    state_dir = tmp_path / "a" / ".state"
    state_dir.mkdir(parents=True)
    for name in ("x", "outside", "b", "evil"):
        write_lem(outside, lem_v1(name), stem=name)
        write_lem(tmp_path / "a", lem_v1(name), stem=name)
    write_lem(state_dir, lem_v1("inside"))
    return outside, state_dir


@pytest.mark.parametrize("ident", HOSTILE_IDS)
def test_resolve_and_load_never_leave_the_directory(nested_state, ident: str) -> None:
    outside, state_dir = nested_state
    before = tree_state(outside)
    store = StateStore(state_dir, durable=False)
    with pytest.raises(ExperimentNotFound):
        store.resolve(ident)
    with pytest.raises(ExperimentNotFound):
        store.load(ident)
    assert tree_state(outside) == before


@pytest.mark.parametrize("ident", HOSTILE_IDS)
def test_save_refuses_ids_that_name_paths(nested_state, ident: str) -> None:
    outside, state_dir = nested_state
    before = tree_state(outside)
    store = StateStore(state_dir, durable=False)
    with pytest.raises(UnsafePathError):
        store.save(LemExperimentState(experiment_id=ident))
    with pytest.raises(UnsafePathError):
        store.create(ExperimentDoc(experiment_id=ident, last_updated=datetime.now().astimezone()))
    assert tree_state(outside) == before


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/etc/passwd", "..", "", "."])
def test_save_refuses_keys_that_are_paths(nested_state, key: str) -> None:
    outside, state_dir = nested_state
    before = tree_state(outside)
    store = StateStore(state_dir, durable=False)
    with pytest.raises(UnsafePathError):
        store.save(LemExperimentState(experiment_id="fine"), key=key) if key else store.path_for(key)
    assert tree_state(outside) == before


def test_an_id_with_a_slash_is_stored_under_its_sanitised_name(state_dir: Path) -> None:
    store = StateStore(state_dir, durable=False)
    saved = store.create(LemExperimentState(experiment_id="study/run-1"))
    assert saved.path == state_dir / "study_run-1.json"
    assert store.load("study/run-1").model.experiment_id == "study/run-1"
    assert store.resolve("study/run-1") == "study_run-1"


def test_symlink_out_of_the_directory_is_neither_read_nor_written(nested_state) -> None:
    outside, state_dir = nested_state
    (state_dir / "x.json").symlink_to(outside / "x.json")
    before = tree_state(outside)
    store = StateStore(state_dir, durable=False)
    store.scan()
    entry = store.entries["x"]
    assert isinstance(entry, BrokenRecord) and entry.reason == "symlink points outside the state directory"
    with pytest.raises(BrokenExperimentError):
        store.load("x")
    with pytest.raises(UnsafePathError):
        store.save(LemExperimentState(experiment_id="x", status="running"))
    with pytest.raises(UnsafePathError):
        store.save(LemExperimentState(experiment_id="x"), key="x")
    assert tree_state(outside) == before


def test_hostile_id_inside_a_file_marks_it_broken(state_dir: Path) -> None:
    (state_dir / "innocent.json").write_text(lem_text(lem_v1("../../etc/cron.d/x")))
    store = StateStore(state_dir, durable=False)
    store.scan()
    entry = store.entries["innocent"]
    assert isinstance(entry, BrokenRecord)
    assert entry.reason == "unsafe id: experiment id contains a '..' or '.' path component"


def test_resolve_finds_a_file_created_after_the_first_scan(state_dir: Path) -> None:
    store = StateStore(state_dir, durable=False)
    write_lem(state_dir, lem_v1("first"))
    store.scan()
    write_lem(state_dir, lem_v1("second"))
    assert store.resolve("second") == "second"
    assert json.loads(store.load("second").model.to_json())["experiment_id"] == "second"
