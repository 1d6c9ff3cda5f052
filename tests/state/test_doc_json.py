"""The runner's cached encoding of a big experiment gives exactly the bytes of ``ExperimentDoc.to_json``."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from state.atomic import atomic_write_bytes
from state.doc_json import BLOCK, RunsJsonCache
from state.native import INDENT_RUNS_UP_TO, ExceptionInfo, ExperimentDoc, HistoryEntry, ProcessInfo, RunRecord, RunStatus
from state.store import StateStore
from state.transitions import ExperimentStatus

NOW = datetime(2025, 3, 1, 12, 0).astimezone()


def big_doc(n: int = 3 * BLOCK + 17) -> ExperimentDoc:
    runs = [RunRecord(id_run=f"{i:05d}", index=i, params={"i": i, "name": f"é\u2028{i}"}) for i in range(n)]
    return ExperimentDoc(
        experiment_id="big",
        status=ExperimentStatus.RUNNING,
        # A key named like the runs inside the config: the runs go in at the top level only.
        config={"runs": [], "nested": {"runs": [1]}},
        processes={"0": ProcessInfo(process_index=0, started_at=NOW)},
        runs=runs,
        history=[HistoryEntry(at=NOW, to=ExperimentStatus.RUNNING, who="me", why='quote " and ]')],
        last_updated=NOW,
    )


def complete(cache: RunsJsonCache, rec: RunRecord, x: float) -> None:
    cache.forget(rec.index)
    rec.status = RunStatus.COMPLETED
    rec.fields = {"x": x}
    rec.completed_at = NOW


def test_the_bytes_are_to_json_s_while_runs_change_block_by_block() -> None:
    doc, cache = big_doc(), RunsJsonCache()
    assert cache.encode(doc) == doc.to_json().encode()
    for rec in doc.runs[: BLOCK + 5]:
        complete(cache, rec, rec.index / 3)
    for index, status in ((2 * BLOCK + 1, RunStatus.RUNNING), (2 * BLOCK + 2, RunStatus.FAILED)):
        cache.forget(index)
        doc.runs[index].status = status
    doc.runs[2 * BLOCK + 2].exception = ExceptionInfo(type="E", message="m")
    assert cache.encode(doc) == doc.to_json().encode()
    assert cache.encode(doc) == doc.to_json().encode()  # now from the cache
    for rec in doc.runs:
        complete(cache, rec, 1.5)
    assert cache.encode(doc) == doc.to_json().encode()


def test_a_block_is_kept_until_forgotten_unless_a_run_in_it_is_running(monkeypatch) -> None:
    from state.doc_json import CHECK_ENV

    monkeypatch.delenv(CHECK_ENV)  # this test looks at a stale block on purpose
    doc, cache = big_doc(), RunsJsonCache()
    cache.forget(BLOCK + 7)
    doc.runs[BLOCK + 7].status = RunStatus.RUNNING
    cache.encode(doc)
    doc.runs[3].fields = {"x": 1.0}  # changed without forget: block 0 keeps its copy
    doc.runs[BLOCK + 7].fields = {"x": 2.0}  # a running run's block is serialised at every write
    encoded = cache.encode(doc)
    assert b'"x":1.0' not in encoded
    assert b'"x":2.0' in encoded
    cache.forget(3)
    assert cache.encode(doc) == doc.to_json().encode()


def test_small_files_stay_indented() -> None:
    doc = big_doc(INDENT_RUNS_UP_TO)
    assert RunsJsonCache().encode(doc) == doc.to_json().encode()


def test_the_store_writes_what_the_encoder_gives(tmp_path) -> None:
    store = StateStore(tmp_path)
    doc, cache = big_doc(), RunsJsonCache()
    saved = store.save(doc, expected=None, encode=cache.parts)
    on_disk = saved.path.read_bytes()
    assert on_disk == saved.model.to_json().encode()
    assert store.load("big").model.runs == doc.runs


def test_the_check_mode_catches_a_run_changed_without_forget(monkeypatch):
    """With the check on (as in the suite), a stale cached block fails the write instead of being written."""
    import pytest

    from state.doc_json import CHECK_ENV, RunsJsonCache
    from state.native import RunStatus

    monkeypatch.setenv(CHECK_ENV, "1")
    doc = big_doc()
    cache = RunsJsonCache()
    assert cache.encode(doc) == doc.to_json().encode("utf-8")
    doc.runs[5].status = RunStatus.FAILED  # no forget(5)
    with pytest.raises(AssertionError, match="without forget"):
        cache.encode(doc)
    cache.forget(5)
    assert cache.encode(doc) == doc.to_json().encode("utf-8")


def test_the_parts_are_written_whole_through_short_writes_and_few_buffers_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = big_doc()
    parts = RunsJsonCache().parts(doc)
    buffers_per_call = []
    writev = os.writev

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        buffers_per_call.append(len(buffers))
        first = buffers[0]
        if len(first) > 4093:  # a short write inside a part
            return writev(fd, [first[:4093]])
        return writev(fd, [first, *(b[:100] for b in buffers[1:2])])  # one ending inside the next

    monkeypatch.setattr("state.atomic._IOV_MAX", 3)
    monkeypatch.setattr("state.atomic.os.writev", short_writev)
    target = tmp_path / "big.json"
    atomic_write_bytes(target, parts, tmp_dir=tmp_path, durable=False)
    monkeypatch.undo()
    assert target.read_bytes() == doc.to_json().encode()
    assert len(parts) > 3 and max(buffers_per_call) == 3
