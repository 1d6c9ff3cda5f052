"""Incremental scans: only changed files are re-read, deletions disappear, the hash index follows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from statekit import lem_text, lem_v1, lem_v2, write_lem

import state.store
from state import BrokenRecord, ExperimentRecord, StateStore
from state.store import ScanDelta


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every file the store's scan reads and parses, recorded."""
    calls: list[bytes] = []
    real = state.store.read_record

    def counting(key, path, version, data: bytes):
        calls.append(data)
        return real(key, path, version, data)

    monkeypatch.setattr(state.store, "read_record", counting)
    return calls


def populate(state_dir: Path, n: int) -> None:
    for i in range(n):
        write_lem(state_dir, lem_v1(f"exp-{i:03d}", status="running", config_hash=f"{i % 4:016x}"))


def test_rescan_reads_only_changed_files(state_dir: Path, parse_calls: list[bytes]) -> None:
    populate(state_dir, 30)
    store = StateStore(state_dir, read_only=True)
    delta = store.scan()
    assert len(delta.added) == 30 and len(parse_calls) == 30
    first = dict(store.entries)

    parse_calls.clear()
    assert store.scan() == ScanDelta()
    assert parse_calls == []
    assert all(store.entries[k] is first[k] for k in first)

    write_lem(state_dir, lem_v1("exp-007", status="completed"))
    delta = store.scan()
    assert delta == ScanDelta(changed=("exp-007",))
    assert len(parse_calls) == 1 and b'"exp-007"' in parse_calls[0]
    assert store.entries["exp-007"].status == "completed"
    assert all(store.entries[k] is first[k] for k in first if k != "exp-007")


def test_refresh_rereads_only_named_changed_files(state_dir: Path, parse_calls: list[bytes]) -> None:
    populate(state_dir, 10)
    store = StateStore(state_dir, read_only=True)
    store.scan()
    parse_calls.clear()

    assert store.refresh(["exp-001.json", "exp-002.json"]) == ScanDelta()
    assert parse_calls == []

    write_lem(state_dir, lem_v1("exp-002", status="failed"))
    write_lem(state_dir, lem_v1("exp-003", status="failed"))  # changed but not named: left for the next scan
    assert store.refresh(["exp-002.json", "exp-001.json"]) == ScanDelta(changed=("exp-002",))
    assert len(parse_calls) == 1
    assert store.entries["exp-003"].status == "running"
    assert store.scan() == ScanDelta(changed=("exp-003",))


def test_new_and_deleted_files(state_dir: Path) -> None:
    populate(state_dir, 5)
    store = StateStore(state_dir, read_only=True)
    store.scan()
    (state_dir / "exp-001.json").unlink()
    write_lem(state_dir, lem_v1("new-one"))
    delta = store.scan()
    assert delta == ScanDelta(added=("new-one",), removed=("exp-001",))
    assert "exp-001" not in store.entries
    (state_dir / "exp-002.json").unlink()
    assert store.refresh(["exp-002.json"]) == ScanDelta(removed=("exp-002",))
    assert store.refresh(["exp-002.json"]) == ScanDelta()
    assert sorted(store.entries) == ["exp-000", "exp-003", "exp-004", "new-one"]


def test_replaced_file_with_same_size_is_seen(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("same", status="running"))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    stat_before = os.stat(path)
    replacement = state_dir / "same.json.new"
    replacement.write_text(lem_text(lem_v1("same", status="failed")).replace('"failed"', '"failed" '))
    assert replacement.stat().st_size == stat_before.st_size
    os.utime(replacement, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    os.replace(replacement, path)  # same size, same mtime: only the inode differs
    assert store.scan() == ScanDelta(changed=("same",))
    assert store.entries["same"].status == "failed"


def test_find_by_config_hash_follows_changes_and_deletes(state_dir: Path) -> None:
    h1, h2, h3 = "1" * 16, "2" * 16, "3" * 16
    write_lem(state_dir, lem_v1("a-aggregated", status="aggregated", config_hash=h1))
    write_lem(state_dir, lem_v1("b-running", status="running", config_hash=h1))
    write_lem(state_dir, lem_v2("c-v2", phase="measuring", config_hash=h2))
    store = StateStore(state_dir, read_only=True)
    store.scan()

    found = store.find_by_config_hash(h1)
    assert isinstance(found, ExperimentRecord) and found.experiment_id == "b-running"
    assert store.find_by_config_hash(h2).experiment_id == "c-v2"
    assert store.find_by_config_hash(h3) is None

    write_lem(state_dir, lem_v1("b-running", status="interrupted", config_hash=h3))
    store.scan()
    assert store.find_by_config_hash(h1) is None  # only the aggregated one is left
    assert store.find_by_config_hash(h3).experiment_id == "b-running"

    (state_dir / "b-running.json").write_text("{")
    store.refresh(["b-running.json"])
    assert isinstance(store.entries["b-running"], BrokenRecord)
    assert store.find_by_config_hash(h3) is None

    (state_dir / "c-v2.json").unlink()
    store.scan()
    assert store.find_by_config_hash(h2) is None
    assert store.keys_with_config_hash(h1) == ["a-aggregated"]
    assert store.keys_with_config_hash(h2) == store.keys_with_config_hash(h3) == []


def test_find_by_config_hash_is_answered_from_the_index(state_dir: Path, parse_calls: list[bytes]) -> None:
    populate(state_dir, 40)
    store = StateStore(state_dir, read_only=True)
    store.scan()
    parse_calls.clear()
    keys = {store.find_by_config_hash(f"{i:016x}").key for i in range(4)}
    assert keys == {"exp-000", "exp-001", "exp-002", "exp-003"}
    assert parse_calls == []
    assert store.keys_with_config_hash(f"{1:016x}") == [f"exp-{i:03d}" for i in range(1, 40, 4)]
    for i in range(1, 40, 4):
        (state_dir / f"exp-{i:03d}.json").unlink()
    store.scan()
    assert store.keys_with_config_hash(f"{1:016x}") == []


def test_missing_directory_scans_empty(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "nope", read_only=True)
    assert store.scan() == ScanDelta()
    assert store.records() == []
    assert not (tmp_path / "nope").exists()


def test_symlink_inside_the_directory_follows_its_target(state_dir: Path) -> None:
    write_lem(state_dir, lem_v1("target-a", status="running"))
    write_lem(state_dir, lem_v1("target-b", status="failed"))
    link = state_dir / "alias.json"
    link.symlink_to("target-a.json")
    store = StateStore(state_dir, read_only=True)
    store.scan()
    assert store.entries["alias"].status == "running"
    assert store.scan() == ScanDelta()

    write_lem(state_dir, lem_v1("target-a", status="completed"))  # the target changes, the link does not
    delta = store.scan()
    assert sorted(delta.changed) == ["alias", "target-a"] and not delta.added and not delta.removed
    assert store.entries["alias"].status == "completed"

    link.unlink()
    link.symlink_to("target-b.json")
    assert store.scan() == ScanDelta(changed=("alias",))
    assert store.entries["alias"].status == "failed"


def test_same_number_of_files_after_a_delete_and_an_add(state_dir: Path) -> None:
    populate(state_dir, 3)
    (state_dir / "notes.txt").write_text("not json")
    store = StateStore(state_dir, read_only=True)
    store.scan()
    (state_dir / "exp-000.json").unlink()
    write_lem(state_dir, lem_v1("exp-999"))
    assert store.scan() == ScanDelta(added=("exp-999",), removed=("exp-000",))


@pytest.mark.parametrize("name", ["a.json", "exp-000001.json", ".hidden.json", "caf\u00e9.json", "sp ace.json", "\udcff.json"])
def test_child_path_is_root_joined_with_the_name(tmp_path: Path, name: str) -> None:
    """The scan's quick path building gives the very path ``root / name`` gives, on this Python."""
    from state.store import child_path

    for root in (tmp_path, Path("relative/dir"), Path("/")):
        built = child_path(root, name)
        assert built == root / name and str(built) == str(root / name) and type(built) is type(root / name)
        assert built.name == name and built.parent == root


def test_candidate_names_are_those_the_name_rules_accept(tmp_path: Path) -> None:
    """``candidate_names`` applies the rules of ``state.paths`` in bulk: the same names, sorted."""
    from state.paths import is_candidate_state_file, is_candidate_study_dir, study_manifest_name

    for name in ("b.json", "a.json", ".hidden.json", "campaign_manifest.json", "notes.txt", "x.json.tmp"):
        (tmp_path / name).write_text("{}")
    for folder, manifest in (("study_1", True), ("study_2", False), ("_study-artefacts", True), (".dot", True), ("d.json", True)):
        (tmp_path / folder).mkdir()
        if manifest:
            (tmp_path / folder / "manifest.json").write_text("{}")
    listed = os.listdir(tmp_path)
    expected = sorted(
        [n for n in listed if is_candidate_state_file(n)]
        + [study_manifest_name(n) for n in listed if is_candidate_study_dir(n) and (tmp_path / n / "manifest.json").exists()]
    )
    assert StateStore(tmp_path, read_only=True).candidate_names() == expected
    assert expected == ["a.json", "b.json", "d.json", "study_1/manifest.json"]
