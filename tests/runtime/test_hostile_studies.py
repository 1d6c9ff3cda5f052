"""The runner under hostile studies: values JSON cannot store, fields too big, grids too large or
endless, a disk that fills up. Each fails what it must with the reason and keeps everything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.exit_codes import EXIT_ERROR
from state.native import RunStatus
from state.transitions import ExperimentStatus

from tests.hardening.helpers import tmpfs
from tests.runtime.helpers import cli_argv, cli_env, expwatch, owners_gone, read_doc, wait_for, write_study

HOSTILE_FIELDS = '''
import math

def store(run):
    i = run.params.i
    run.fields.i = i
    if i == 1:
        run.fields.name = "bad \\udc80 byte"
    elif i == 2:
        run.fields.loss = math.nan
    elif i == 3:
        run.state.curve = [1.0, [2.0, math.inf]]
    elif i == 4:
        run.fields.blob = "x" * (70 * 2**20)
    elif i == 5:
        raise ValueError("step failed on \\udcff")

steps = [store]
grid = {"i": range(7)}
'''


#: Runs the command given as arguments and prints the peak resident size (KiB) of it and its children.
PEAK_RSS = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(done.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(done.returncode)"
)


def test_unstorable_and_oversized_fields_fail_their_run_and_the_rest_is_kept(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, HOSTILE_FIELDS)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "hostile", cwd=tmp_path, timeout=120)
    assert done.returncode == EXIT_ERROR, done.stderr
    assert "Traceback" not in done.stderr
    doc = read_doc(state_dir, "hostile")
    assert doc.status is ExperimentStatus.FAILED and owners_gone(doc)
    runs = {r.index: r for r in doc.runs}
    for i in (0, 6):
        assert runs[i].status is RunStatus.COMPLETED and runs[i].fields == {"i": i}
    reasons = {i: runs[i].exception.message for i in (1, 2, 3, 4)}
    for i in (1, 2, 3, 4):
        assert runs[i].status is RunStatus.FAILED and runs[i].exception.type == "FieldsNotStorable"
        assert runs[i].fields == {} and runs[i].state == {}
    assert "run.fields.name holds a lone surrogate" in reasons[1]
    assert "run.fields.loss is nan (JSON has no NaN or infinity" in reasons[2]
    assert "run.state.curve[1][1] is inf" in reasons[3]
    assert "over the 1 MiB a run may store" in reasons[4]
    assert runs[5].status is RunStatus.FAILED and runs[5].exception.type == "ValueError"
    assert runs[5].exception.message == "step failed on \\udcff"
    # Nothing was turned into a string on the way: no "nan" or "inf" anywhere in the file.
    text = (state_dir / "hostile.json").read_text(encoding="utf-8")
    assert '"nan"' not in text and '"inf"' not in text

    # A resume reruns them the same way, without crashing, and keeps the completed runs.
    again = expwatch("resume", "hostile", "--retry-failed", "--state-dir", state_dir, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    doc = wait_for(
        lambda: (d := read_doc(state_dir, "hostile")) and d.attempt == 2 and d.status is not ExperimentStatus.RUNNING
        and owners_gone(d) and d,
        timeout=120,
        what="the resumed runner finished",
    )
    assert doc.status is ExperimentStatus.FAILED
    assert [r.status for r in doc.runs] == [RunStatus.COMPLETED] + [RunStatus.FAILED] * 5 + [RunStatus.COMPLETED]


@pytest.mark.parametrize(
    ("grid", "said"),
    [
        ("{'a': range(10_000), 'b': range(1_000)}", "the grid is too large (10,000,000 runs)"),
        ("{'a': range(10**7)}", "the grid is too large (axis 'a' has 10,000,000 values)"),
        ("{'i': itertools.count()}", "axis 'i' has more than 150,000 values, or never ends"),
        ("({'i': i} for i in itertools.count())", "it lists more than 150,000 runs, or never ends"),
        ("{'x': [1.0, float('nan')]}", "JSON cannot store exactly (NaN or infinity"),
        ("{'x': ['\\udc80']}", "lone surrogate"),
        ("{'x': [1]}\nconfig = {'limit': float('inf')}", "`config` cannot be stored as JSON exactly (NaN or infinity"),
    ],
)
def test_oversized_endless_and_unstorable_grids_are_refused_before_they_are_built(
    tmp_path: Path, state_dir: Path, grid: str, said: str
):
    study = write_study(tmp_path, f"import itertools\n\ndef s(run):\n    pass\n\nsteps = [s]\ngrid = {grid}\n")
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *cli_argv("run", study, "--state-dir", state_dir)],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == EXIT_ERROR and said in done.stderr, done.stderr
    assert list(state_dir.glob("*.json")) == []
    assert int(done.stdout) < 300 * 1024  # KiB: the refusal never built the grid


DISK_FILLER = '''
import os

FILLER = {filler!r}

def fill_the_disk():
    """Write until the disk is full, then give back 64 KiB: room for a small file only."""
    with open(FILLER, "wb") as handle:
        block = b"\\0" * 65536
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass
    size = os.path.getsize(FILLER)
    os.truncate(FILLER, max(0, size - 65536))

def store(run):
    run.fields.i = run.params.i
    if run.params.i == 3:
        fill_the_disk()
        run.fields.blob = "x" * (512 * 1024)

steps = [store]
grid = {{"i": range(6)}}
'''


def test_a_full_disk_leaves_the_experiment_interrupted_with_the_reason(tmp_path: Path):
    disk = tmp_path / "disk"
    try:
        context = tmpfs(disk, size="4m")
        context.__enter__()
    except PermissionError as exc:
        pytest.skip(str(exc))
    try:
        state_dir = disk / "state"
        state_dir.mkdir()
        study = write_study(tmp_path, DISK_FILLER.format(filler=str(disk / "filler")))
        done = expwatch("run", study, "--state-dir", state_dir, "--id", "full", cwd=tmp_path)
        assert done.returncode == EXIT_ERROR
        assert "cannot write the state file: No space left on device (ENOSPC)" in done.stderr
        assert "left interrupted" in done.stderr and "Traceback" not in done.stderr
        doc = read_doc(state_dir, "full")
        assert doc.status is ExperimentStatus.INTERRUPTED and owners_gone(doc)
        assert "No space left on device" in doc.history[-1].why
        assert not any(r.status is RunStatus.RUNNING for r in doc.runs)
        assert doc.runs[3].status is not RunStatus.COMPLETED  # its result never reached the disk
        assert list((state_dir / ".expwatch" / "tmp").iterdir()) == []
    finally:
        context.__exit__(None, None, None)


def test_a_worker_that_dies_alike_after_each_restart_is_said_once_with_a_count(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, """
        import os

        def step(run):
            os._exit(3)

        steps = [step]
        grid = {"i": range(2)}
    """)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "dies", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    doc = read_doc(state_dir, "dies")
    assert doc is not None and doc.status.value == "failed"
    assert doc.error_message.count("worker 0 exited with code 3") == 1, doc.error_message
    assert doc.error_message.endswith("; worker 0 exited with code 3 (2 times)"), doc.error_message
