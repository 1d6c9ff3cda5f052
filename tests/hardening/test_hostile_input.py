"""The hostile corpus through the real CLI and the real dashboard on a pty, and the pieces under them.

Each attack is something a writer of a shared state directory can plant
(``hostile_corpus.build``). What must hold: nothing outside the state
directory changes, no control character, C1 byte or markup from data reaches
the terminal (checked on the raw bytes), a bad value is a broken row or a
refusal with its reason, and no process grows past a few hundred MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import subprocess
import tempfile
import termios
import time
from pathlib import Path

import pytest
from rich.text import Text

from state.atomic import exclusive_lock
from state.inspection.steps import SourceCheck, StepChecker
from state.native import StepInfo
from state.sidecar import UnsafeSidecarError, read_regular, read_tail
from state.store import StateStore
from state.text import printable
from tests.hardening.helpers import EXPWATCH, in_child_as, lem_v1_text
from tests.hardening.hostile_corpus import ESCAPES, build
from widgets.safe_text import safe_text

#: Bytes that only data could have put on the terminal: the OSC retitle, a C1 CSI, a bidi override.
FORBIDDEN = (b"\x1b]0;pwned", b"\x1b[2J\x1b]", b"\xc2\x9b", b"\x9b31m", b"\xe2\x80\xae")
RSS_LIMIT_KB = 400 * 1024
NOBODY = 65534


def _clean_cli_output(data: bytes) -> None:
    text = data.decode("utf-8")  # strict: a lone surrogate could not even be encoded
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), text[:2000]
    assert "Traceback (most recent call last)" not in text


def _tree(root: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    """Every path under ``root``: mode, size, mtime and (for files up to 1 MiB, not links) the bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            small = path.is_file() and not path.is_symlink() and st.st_size <= 1 << 20
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, path.read_bytes() if small else None)
    return out


#: Peak RSS (KiB) of each CLI process this module ran. A child forked from pytest reports pytest's
#: own size as its peak (Linux keeps the high-water mark across fork and exec), so each command
#: runs under a small launcher and the launcher reports its child's peak.
CLI_PEAKS_KB: list[int] = []
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm-256color"}
    env.pop("EXPWATCH_STATE_DIR", None)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as peak:
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, peak.name, str(EXPWATCH), *args],
            capture_output=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
        )
        CLI_PEAKS_KB.append(int(peak.read() or 0))
    return done


# -- the sanitiser ---------------------------------------------------------------------------
def test_printable_escapes_every_kind_of_control_and_keeps_plain_text_as_it_is():
    assert printable("plain ✓ 東京") == "plain ✓ 東京"
    assert printable("a\x1b[2Jb\x9bc\u202ed\udc9be\x7f") == "a\\x1b[2Jb\\x9bc\\u202ed\\udc9be\\x7f"
    assert printable("a\tb\nc") == "a b c"
    assert printable("a\tb\nc\rd", keep_newlines=True) == "a   b\nc\\x0dd"
    assert printable(5) == "5"


def test_safe_text_moves_colours_with_the_characters():
    cell = Text.assemble(("\x1b", "red"), ("ok", "bold"))
    safe = safe_text(cell)
    assert safe.plain == "\\x1bok"
    assert [(s.start, s.end, s.style) for s in safe.spans] == [(0, 4, "red"), (4, 6, "bold")]


# -- the CLI ----------------------------------------------------------------------------------
def test_cli_over_the_hostile_corpus(tmp_path: Path):
    corpus = build(tmp_path)
    before_outside = _tree(corpus.outside)
    before_state = _tree(corpus.state)
    source = ("--source", str(corpus.state))
    runs = {
        "list": _cli("list", *source),
        "list --md": _cli("list", "--md", *source),
        "snapshot": _cli("snapshot", str(corpus.state)),
        "list --json": _cli("list", "--json", *source),
    }
    for case, ident in corpus.ids.items():
        runs[f"show {case}"] = _cli("show", ident, *source)
    for name, done in runs.items():
        assert done.returncode in (0, 1, 3), (name, done.returncode, done.stderr)
        _clean_cli_output(done.stdout + done.stderr)
    listed = {row["experiment_id"] for row in json.loads(runs["list --json"].stdout)}
    assert {"escfields", "a-[/]", "[reverse]rev", "deadrunning", "naiveheartbeat", "yearone"} <= listed | {
        r["key"] for r in json.loads(runs["list --json"].stdout)
    }
    text = runs["list"].stdout.decode()
    for broken in ("hugeint", "hugeparams", "hugeprompt", "hugefloat", "yearone"):
        assert re.search(rf"^{broken}\s+broken: ", text, re.M), broken
    # Every escape is visible as text, the rest of the directory is listed.
    assert "\\x1b[2J" in runs["show escapes in fields"].stdout.decode()
    assert "sur\\udc9bx" in text and "bad\\x1b[31mname" in text
    snapshot = runs["snapshot"].stdout.decode()
    assert "a symlink (not followed)" in snapshot and "larger than 4 MiB" in snapshot and "date out of range" in snapshot
    assert _tree(corpus.outside) == before_outside
    assert _tree(corpus.state) == before_state
    assert CLI_PEAKS_KB and max(CLI_PEAKS_KB) < RSS_LIMIT_KB, CLI_PEAKS_KB


def test_sidecar_symlinks_refuse_the_action_before_anything_is_written(tmp_path: Path):
    corpus = build(tmp_path)
    source = ("--source", str(corpus.state))
    before_state, before_outside = _tree(corpus.state), _tree(corpus.outside)
    refused = _cli("mark-stale", "deadrunning", *source)
    assert refused.returncode == 4
    assert b"journal.jsonl: it is a symlink" in refused.stderr
    assert _tree(corpus.state) == before_state and _tree(corpus.outside) == before_outside

    (corpus.state / ".expwatch" / "journal.jsonl").unlink()
    refused = _cli("mark-stale", "deadrunning", *source)
    assert refused.returncode == 4 and b"deadrunning.lock: it is a symlink" in refused.stderr
    assert not (corpus.outside / "created-by-lock").exists()
    assert json.loads((corpus.state / "deadrunning.json").read_text())["status"] == "running"

    # A hard link to a file outside is refused like a symlink.
    (corpus.state / ".expwatch" / "locks" / "deadrunning.lock").unlink()
    os.link(corpus.outside / "victim.sh", corpus.state / ".expwatch" / "journal.jsonl")
    refused = _cli("mark-stale", "deadrunning", *source)
    assert refused.returncode == 4 and b"hard links" in refused.stderr
    assert (corpus.outside / "victim.sh").read_text() == "# sourced by a shell\n"

    (corpus.state / ".expwatch" / "journal.jsonl").unlink()
    done = _cli("mark-stale", "deadrunning", *source)
    assert done.returncode == 0, done.stderr
    assert _tree(corpus.outside) == before_outside


def test_a_symlinked_sidecar_folder_is_refused(tmp_path: Path):
    corpus = build(tmp_path)
    (corpus.state / ".expwatch" / "journal.jsonl").unlink()
    (corpus.state / ".expwatch" / "locks" / "deadrunning.lock").unlink()
    elsewhere = corpus.outside / "locks"
    elsewhere.mkdir()
    os.rename(corpus.state / ".expwatch" / "locks", corpus.outside / "old-locks")
    os.symlink(elsewhere, corpus.state / ".expwatch" / "locks")
    refused = _cli("mark-stale", "deadrunning", "--source", str(corpus.state))
    assert refused.returncode == 4 and b"not a real directory" in refused.stderr
    assert list(elsewhere.iterdir()) == []


def test_resume_ignores_a_log_path_outside_the_log_folder_and_says_so(tmp_path: Path):
    corpus = build(tmp_path)
    store = StateStore(corpus.state, read_only=True)
    path, note = store.log_file("logoutside", str(corpus.outside / "victim.log"))
    assert path == corpus.state.resolve() / ".expwatch" / "logs" / "logoutside.log"
    assert note and "ignored" in note
    inside = corpus.state.resolve() / ".expwatch" / "logs" / "x.log"
    assert store.log_file("x", str(inside)) == (inside, None)
    for recorded in ("/dev/zero", "relative.log", str(inside.parent / ".." / "x.log"), "a\0b"):
        assert store.log_file("x", recorded)[1] is not None, recorded
    (corpus.state / ".expwatch" / "journal.jsonl").unlink()  # else the action is refused before planning
    dry = _cli("resume", "logoutside", "--dry-run", "--source", str(corpus.state))
    out = dry.stdout.decode()
    assert "Log: " + str(path) in out and "victim.log is outside" in out and "ignored" in out


# -- reads of what a file names -------------------------------------------------------------------
def test_reads_of_named_files_refuse_devices_and_stop_at_the_limit(tmp_path: Path):
    with pytest.raises(OSError, match="not a regular file"):
        read_regular("/dev/zero", 1024)
    with pytest.raises(OSError, match="not a regular file"):
        read_tail("/dev/zero", 1024)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(3 * 1024**3)
    data, st = read_regular(sparse, 1024)
    assert len(data) == 1025 and st.st_size == 3 * 1024**3
    assert read_tail(sparse, 10) == (b"\0" * 10, 3 * 1024**3)
    link = tmp_path / "link"
    link.symlink_to(sparse)
    with pytest.raises(OSError):
        read_regular(link, 10, follow=False)
    step = StepInfo(name="s", qualname="s", file="/dev/zero", line=1, source="def s(): pass\n", source_hash="0" * 16)
    check, why = StepChecker(tmp_path).check_step(step, tmp_path)
    assert check is SourceCheck.UNKNOWN and "not a regular file" in why


def test_a_journal_that_is_a_symlink_is_never_read_and_history_says_so(tmp_path: Path):
    corpus = build(tmp_path)
    store = StateStore(corpus.state, read_only=True)
    with pytest.raises(UnsafeSidecarError, match="symlink"):
        list(store.journal.entries())
    (corpus.state / ".expwatch" / "journal.jsonl").unlink()
    (corpus.state / ".expwatch" / "journal.jsonl").symlink_to("/dev/zero")
    with pytest.raises(UnsafeSidecarError):
        list(store.journal.entries())
    (corpus.state / ".expwatch" / "journal.jsonl").unlink()
    good = {"time": "2026-03-14T09:00:00+00:00", "user": "u", "host": "h", "experiment": "x", "action": "a"}
    (corpus.state / ".expwatch" / "journal.jsonl").write_text(
        json.dumps({**good, "time": 5}) + "\n" + json.dumps(good) + "\n"
    )
    assert [e.time for e in store.journal.entries()] == [good["time"]]


# -- the dashboard on a pty ------------------------------------------------------------------------
class Terminal:
    """The real ``expwatch`` on a pseudo-terminal; every byte it writes is kept."""

    def __init__(self, *args: str, cols: int = 160, rows: int = 50) -> None:
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        env.pop("EXPWATCH_STATE_DIR", None)
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.execve(str(EXPWATCH), [str(EXPWATCH), *args], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.pid, self.fd = pid, fd
        self.output = bytearray()

    def read_until(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(bytes(self.output)):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; last output: {bytes(self.output[-2000:])!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.output += chunk

    def press(self, keys: bytes, then: bytes | tuple[bytes, ...] | None = None) -> None:
        """Send ``keys``; wait until the app draws something, or one of ``then`` if given."""
        mark = len(self.output)
        os.write(self.fd, keys)
        wanted = (then,) if isinstance(then, bytes) else then
        if wanted:
            self.read_until(lambda out: any(w in out[mark:] for w in wanted))
        else:
            self.read_until(lambda out: len(out) > mark)

    def peak_rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                with contextlib.suppress(OSError):
                    self.read_until(lambda _out: False, timeout=0.5)
                return os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError, AssertionError):
                self.read_until(lambda _out: False, timeout=0.2)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the dashboard did not exit")


def test_dashboard_on_a_pty_shows_the_hostile_corpus_as_text(tmp_path: Path):
    corpus = build(tmp_path)
    before_outside = _tree(corpus.outside)
    term = Terminal(str(corpus.state))
    try:
        term.read_until(lambda out: b"hugeparams" in out and b"escfields" in out, timeout=60)
        # Walk every row (the process table's title and cells follow the cursor). On each, S says
        # why it cannot act (a notice for a broken file, a dialog titled with the id, cancelled
        # with n); some are opened in the inspector with every tab shown. A lone Esc is only an
        # Esc once the app has answered it, so each key waits for what it brings on screen.
        for n in range(len(corpus.ids) + 2):
            term.press(b"S", then=(b"is unreadable", b"Cancel (n)", b"Close (esc)", b"cannot mark", b"does not allow"))
            term.press(b"n")
            if n % 3 == 0:
                term.press(b"\r", then=b"Back")
                term.press(b"123456")
                term.press(b"\x1b", then=b"Clean up")  # the main screen's footer is back
            term.press(b"j")
        term.press(b"\x10", then=b"Inspect ")  # ctrl+p: the palette lists the selected row's commands
        term.press(b"Inspect")
        term.press(b"\r", then=b"Back")
        term.press(b"\x1b", then=b"Clean up")  # the main screen's footer is back
        assert term.peak_rss_kb() < RSS_LIMIT_KB
        os.write(term.fd, b"q")
        code = term.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(term.pid, signal.SIGKILL)
        os.close(term.fd)
    raw = bytes(term.output)
    assert code == 0, raw[-3000:]
    for forbidden in FORBIDDEN:
        assert forbidden not in raw, forbidden
    assert b"Traceback (most recent call last)" not in raw and b"MarkupError" not in raw
    # The escapes are there, as text.
    assert printable(ESCAPES).encode()[:8] in raw
    assert _tree(corpus.outside) == before_outside


def test_a_crashing_dashboard_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from textual.app import App

    from app.app import DashboardOptions, ExpwatchApp, run_dashboard

    def boom(self: ExpwatchApp) -> None:
        raise RuntimeError("crash on mount")

    monkeypatch.setattr(ExpwatchApp, "on_mount", boom)
    monkeypatch.setattr(ExpwatchApp, "run", lambda self: App.run(self, headless=True))
    assert run_dashboard(DashboardOptions(sources=(tmp_path,), read_only=True, watch=False, gpus=False)) == 1


# -- one change the scan cannot see ------------------------------------------------------------------
def test_a_file_made_readable_again_comes_back_on_the_next_scan():
    # A directory the unprivileged child can reach (pytest's temp root is private to root).
    root = Path(tempfile.mkdtemp(prefix="expwatch-chmod-"))
    root.chmod(0o755)
    os.chown(root, NOBODY, NOBODY)

    def body() -> list[str]:
        path = root / "exp.json"
        path.write_text(lem_v1_text("exp"))
        store = StateStore(root, read_only=True)
        path.chmod(0)
        store.scan()
        seen = [getattr(store.entries["exp"], "reason", "readable")]
        path.chmod(0o644)  # neither inode, mtime nor size changes
        store.scan()
        seen.append(getattr(store.entries["exp"], "reason", "readable"))
        return seen

    try:
        seen = in_child_as(NOBODY, body)
    except PermissionError as exc:
        pytest.skip(f"cannot drop privileges: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert seen == ["permission denied", "readable"]


# -- watches and leftovers ----------------------------------------------------------------------------
def _inotify_watches() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += Path(f"/proc/self/fdinfo/{fd}").read_text().count("inotify wd:")
    return count


def test_the_watcher_holds_a_few_watches_however_many_subfolders(tmp_path: Path):
    from runtime.watcher import watch_directory

    for n in range(3000):
        (tmp_path / f"results-{n}").mkdir()
    (tmp_path / ".expwatch" / "devices").mkdir(parents=True)
    counts: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        async for _batch in watch_directory(tmp_path, stop):
            counts.append(_inotify_watches())
            stop.set()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert counts and counts[0] <= 3


def test_stale_temp_files_are_cleaned_when_the_directory_is_opened_for_writing(tmp_path: Path):
    tmp = tmp_path / ".expwatch" / "tmp"
    tmp.mkdir(parents=True)
    old = time.time() - 120
    for name in ("old.json.abc.tmp", "locked.json.def.tmp", "young.json.ghi.tmp"):
        (tmp / name).write_text("{")
    for name in ("old.json.abc.tmp", "locked.json.def.tmp"):
        os.utime(tmp / name, (old, old))
    (tmp / "not-mine.txt").write_text("x")
    os.utime(tmp / "not-mine.txt", (old, old))
    (tmp / "link.json.x.tmp").symlink_to(tmp_path / "elsewhere")
    (tmp_path / ".expwatch" / "locks").mkdir()
    with exclusive_lock(tmp_path / ".expwatch" / "locks" / "locked.lock"):
        StateStore(tmp_path, read_only=True)  # a read-only store never removes anything
        assert (tmp / "old.json.abc.tmp").exists()
        StateStore(tmp_path)
    assert sorted(p.name for p in tmp.iterdir()) == ["link.json.x.tmp", "locked.json.def.tmp", "not-mine.txt", "young.json.ghi.tmp"]
