"""Ids and file names built to leave the state directory are refused or not found; nothing outside is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from state import StateStore
from state.lem import LemExperimentState
from state.paths import UnsafePathError
from state.record import BrokenRecord
from state.store import ExperimentNotFound, StoreError
from tests.hardening.helpers import interrupt, run_cli, tree_state, write_lem

HOSTILE = [
    "../victim",
    "../../victim",
    "../outside/victim",
    "..",
    ".",
    "/etc/passwd",
    "../../etc/passwd",
    "~/victim",
    "victim/../../victim",
    "..\\victim",
    "a\x00b",
    "",
]
TOO_LONG = "x" * 5000
IDS = [repr(i)[:24] for i in HOSTILE]


def outside_state(top: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Everything beside the state directory (lock files inside its sidecar may appear)."""
    return {k: v for k, v in tree_state(top).items() if k != "state" and not k.startswith("state/")}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A state dir and, beside it, valid experiments that must stay out of reach."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    write_lem(tmp_path, "victim", status="running")
    write_lem(outside, "victim", status="running")
    write_lem(state_dir, "inside", status="running")
    return state_dir, tmp_path


@pytest.mark.parametrize("ident", HOSTILE, ids=IDS)
def test_resolve_load_transition_refuse_hostile_ids(layout: tuple[Path, Path], ident: str) -> None:
    state_dir, top = layout
    before = outside_state(top)
    store = StateStore(state_dir)
    store.scan()
    for attempt in (
        lambda: store.resolve(ident),
        lambda: store.load(ident),
        lambda: interrupt(store, ident),
        lambda: store.update(ident, lambda m: m),
    ):
        with pytest.raises((ExperimentNotFound, UnsafePathError, StoreError, ValueError)):
            attempt()
    assert outside_state(top) == before


def test_too_long_id_is_refused_and_touches_nothing(layout: tuple[Path, Path]) -> None:
    state_dir, top = layout
    before = outside_state(top)
    store = StateStore(state_dir)
    store.scan()
    with pytest.raises(StoreError):
        store.load(TOO_LONG)
    # The lock file name is too long as well: the OS refuses it before any state file is opened.
    with pytest.raises((StoreError, OSError)):
        interrupt(store, TOO_LONG)
    assert outside_state(top) == before
    assert not (state_dir / f"{TOO_LONG[:200]}.json").exists()


def test_too_long_id_is_not_found(layout: tuple[Path, Path]) -> None:
    store = StateStore(layout[0])
    store.scan()
    with pytest.raises(ExperimentNotFound):
        store.resolve(TOO_LONG)


@pytest.mark.parametrize("ident", [i for i in HOSTILE if i] + [TOO_LONG], ids=[i for h, i in zip(HOSTILE, IDS) if h] + ["too-long"])
def test_save_refuses_ids_and_keys_that_escape(layout: tuple[Path, Path], ident: str) -> None:
    state_dir, top = layout
    before = outside_state(top)
    store = StateStore(state_dir)
    model = LemExperimentState(experiment_id=ident)
    try:
        saved = store.save(model)
    except (UnsafePathError, StoreError, ValueError):
        pass
    else:
        # Ids whose sanitised name is harmless may be written: only ever directly inside.
        assert saved.path.parent == state_dir, saved.path
    with pytest.raises((UnsafePathError, ValueError)):
        store.save(LemExperimentState(experiment_id="fine"), key=ident if "/" in ident or ident in ("", ".", "..") else "../" + ident)
    assert outside_state(top) == before


def test_a_file_claiming_a_hostile_id_is_a_broken_row_and_never_acted_on(layout: tuple[Path, Path]) -> None:
    state_dir, top = layout
    (state_dir / "sneaky.json").write_text(
        (state_dir / "inside.json").read_text().replace('"inside"', '"../victim"', 1)
    )
    store = StateStore(state_dir)
    store.scan()
    entry = store.entries["sneaky"]
    assert isinstance(entry, BrokenRecord) and entry.reason.startswith("unsafe id")
    before = outside_state(top)
    with pytest.raises(StoreError):
        interrupt(store, "../victim")
    assert outside_state(top) == before


def test_symlink_pointing_outside_is_not_followed(layout: tuple[Path, Path]) -> None:
    state_dir, top = layout
    os.symlink(top / "victim.json", state_dir / "link.json")
    store = StateStore(state_dir)
    store.scan()
    entry = store.entries["link"]
    assert isinstance(entry, BrokenRecord) and "outside" in entry.reason
    before = outside_state(top)
    with pytest.raises(StoreError):
        interrupt(store, "link")
    assert outside_state(top) == before
    assert (state_dir / "link.json").is_symlink()


@pytest.mark.parametrize("ident", ["../../etc/passwd", "/etc/passwd", "../victim", "../outside/victim", TOO_LONG],
                         ids=["dotdot-etc", "absolute", "dotdot", "dotdot-dir", "too-long"])
def test_cli_show_and_mark_stale_refuse(layout: tuple[Path, Path], ident: str) -> None:
    state_dir, top = layout
    before = tree_state(top)
    shown = run_cli("show", ident, "--state-dir", str(state_dir))
    assert shown.returncode == 3, shown.stdout + shown.stderr
    assert "no experiment" in shown.stderr and "root:" not in shown.stdout
    marked = run_cli("mark-stale", ident, "--state-dir", str(state_dir))
    assert marked.returncode != 0
    assert tree_state(top) == before
