"""Dashboard figures, measured on a real terminal (a pty), as a user would see them.

- startup to first frame with 1k and 10k experiments (spawn -> a known row is on screen),
  beside a bare Textual app (one Static) on the same pty harness, and the ratio; also the
  process's on-CPU time (all threads) at that moment, which moves less with the machine's
  load than the wall time; ``--against DIR`` times another checkout of expwatch too, interleaved
- change-to-screen latency (replace a state file -> the new value is on screen)
- idle CPU over 30 s with 10k experiments
- CPU and bytes written to the terminal under 50 file updates per second

Prints a table of medians. Run: .venv/bin/python benchmarks/bench_dashboard.py [--quick]
[--first-frame-only] [--against DIR]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from state.lem import LemExperimentState  # noqa: E402

COLS, ROWS = 120, 40
#: expwatch as the worktree has it (the console script may point at another checkout's install).
EXPWATCH = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]
#: The floor for a first frame: Textual itself, one Static, the same terminal and harness.
BARE_APP = """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    BINDINGS = [("q", "quit")]

    def compose(self):
        yield Static("exp-000000 on a bare Textual app")

Bare().run()
"""
FIRST_FRAME_RATIO_GOAL = 1.5


def make_dir(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"expwatch-bench-{n}-"))
    now = datetime.now()
    for i in range(n):
        status = ("completed", "failed", "interrupted", "aggregated")[i % 4]
        model = LemExperimentState(
            experiment_id=f"exp-{i:06d}",
            status=status,
            model_name="bench-model",
            total_runs=10,
            completed_runs={f"r{j}": "x" for j in range(i % 10)},
            started_at=now - timedelta(hours=1),
            last_updated=now - timedelta(hours=2),
        )
        (root / f"exp-{i:06d}.json").write_text(model.to_json())
    return root


#: Terminals not closed yet: killed, with their process groups, when the benchmark exits early.
_OPEN: set["Terminal"] = set()


@atexit.register
def _kill_open_terminals() -> None:
    for term in list(_OPEN):
        with contextlib.suppress(OSError):
            os.killpg(term.proc.pid, signal.SIGKILL)


class Terminal:
    """expwatch running on a pty; reads everything it writes."""

    def __init__(self, root: Path | str | list[Path | str] | None, *extra: str, checkout: Path = ROOT) -> None:
        """expwatch (``checkout``'s) on ``root`` (one source or a list of them); ``root=None`` runs the bare Textual app instead."""
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")])))
        env.pop("TEXTUAL", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # see compile_bytecode
        sources = [] if root is None else [str(r) for r in (root if isinstance(root, list) else [root])]
        argv = [sys.executable, "-c", BARE_APP] if root is None else [*EXPWATCH, *sources, "--refresh", "1", *extra]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=checkout,
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        )
        os.close(slave)
        _OPEN.add(self)
        self.buffer = bytearray()
        self.total = 0

    def pump(self, timeout: float = 0.01) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                return
            self.total += len(chunk)
            self.buffer += chunk
            if len(self.buffer) > 1 << 20:
                del self.buffer[: len(self.buffer) - (1 << 19)]

    def wait_for(self, needle: bytes, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if needle in self.buffer:
                return time.perf_counter()
            self.pump()
        raise TimeoutError(f"{needle!r} not on screen within {timeout}s")

    def on_cpu_ms(self) -> float:
        """CPU time the process (every thread) has had so far, from the scheduler's own count."""
        total = 0
        for path in glob.glob(f"/proc/{self.proc.pid}/task/*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(path).read_text().split()[0])
        return total / 1e6

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.pump(0.05)

    def close(self) -> None:
        try:
            os.write(self.master, b"q")
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        _OPEN.discard(self)


def compile_bytecode(checkout: Path) -> None:
    """Write ``checkout``'s bytecode caches before anything is timed, as an install does.

    The bare app's Textual is read from the ``.pyc`` files its install wrote; without the same
    for expwatch (a checkout run with ``PYTHONDONTWRITEBYTECODE``, as the development shells
    here are), every start compiled the project's modules again, about 40 ms of CPU that no
    installed expwatch pays.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    dirs = [d for d in ("app", "state", "widgets", "runtime") if (checkout / d).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *dirs], cwd=checkout, env=env, check=True)


#: On-CPU milliseconds at the first frame, by program ("bare", "expwatch", "against").
FIRST_FRAME_CPU: dict[str, list[float]] = {}


def first_frame(
    n: int, repeats: int, bare: list[float] | None = None, against: tuple[Path, list[float]] | None = None
) -> tuple[list[float], list[float]]:
    """(spawn -> first experiment rows on screen, spawn -> every file scanned and counted);
    with ``bare``, the bare app's first frame is appended to it before each repeat, and with
    ``against`` (a checkout, its times) that checkout's first rows (interleaved, so all see the
    same machine load)."""
    root = make_dir(n)
    first, full = [], []
    try:
        for _ in range(repeats):
            if bare is not None:
                bare += bare_first_frame(1)
            if against is not None:
                term = Terminal(root, checkout=against[0])
                against[1].append(term.wait_for(b"exp-0000") - term.started)
                FIRST_FRAME_CPU.setdefault("against", []).append(term.on_cpu_ms())
                term.close()
            term = Terminal(root)
            seen = term.wait_for(b"exp-0000")
            first.append(seen - term.started)
            FIRST_FRAME_CPU.setdefault("expwatch", []).append(term.on_cpu_ms())
            done = term.wait_for(f"{n} exp".encode())
            full.append(done - term.started)
            term.close()
    finally:
        shutil.rmtree(root)
    return first, full


def bare_first_frame(repeats: int) -> list[float]:
    """Spawn -> the bare app's Static on screen: what any Textual app pays before its first frame."""
    times = []
    for _ in range(repeats):
        term = Terminal(None)
        times.append(term.wait_for(b"exp-000000") - term.started)
        FIRST_FRAME_CPU.setdefault("bare", []).append(term.on_cpu_ms())
        term.close()
    return times


def latency_and_load(n: int, samples: int, rate: float, idle_seconds: float) -> dict[str, float]:
    root = make_dir(n)
    out: dict[str, float] = {}
    term = Terminal(root)
    try:
        term.wait_for(f"{n} exp".encode())
        ps = psutil.Process(term.proc.pid)
        term.drain(3.0)
        # idle CPU
        cpu0 = ps.cpu_times()
        bytes0 = term.total
        term.drain(idle_seconds)
        cpu1 = ps.cpu_times()
        out["idle_cpu_pct"] = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / idle_seconds * 100
        out["idle_bytes_per_s"] = (term.total - bytes0) / idle_seconds
        # change-to-screen latency: the row on top (sorted by status) gets a new model name.
        target = root / "exp-000002.json"  # interrupted: near the top of the status sort
        lat = []
        for i in range(samples):
            marker = f"mdl{i:05d}"
            model = LemExperimentState.model_validate_json(target.read_bytes())
            model.model_name = marker
            tmp = root / ".bench.tmp"
            tmp.write_text(model.to_json())
            t0 = time.perf_counter()
            os.replace(tmp, target)
            seen = term.wait_for(marker.encode(), timeout=5)
            lat.append((seen - t0) * 1000)
            term.drain(0.05)
        out["latency_p50_ms"] = statistics.median(lat)
        out["latency_p99_ms"] = sorted(lat)[max(0, int(len(lat) * 0.99) - 1)]
        # 50 updates per second for 10 s, spread over 20 files
        cpu0 = ps.cpu_times()
        bytes0 = term.total
        period = 1.0 / rate
        start = time.perf_counter()
        k = 0
        while time.perf_counter() - start < 10.0:
            i = k % 20
            path = root / f"exp-{i * 4 + 2:06d}.json"
            model = LemExperimentState.model_validate_json(path.read_bytes())
            model.cycle_id = k
            model.model_name = f"upd{k}"
            tmp = root / ".bench.tmp"
            tmp.write_text(model.to_json())
            os.replace(tmp, path)
            k += 1
            next_at = start + k * period
            while time.perf_counter() < next_at:
                term.pump(max(0.0, min(0.01, next_at - time.perf_counter())))
        elapsed = time.perf_counter() - start
        cpu1 = ps.cpu_times()
        out["load_cpu_pct"] = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100
        out["load_kb_per_s"] = (term.total - bytes0) / elapsed / 1024
        out["load_updates_per_s"] = k / elapsed
    finally:
        term.close()
        shutil.rmtree(root)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter idle window")
    parser.add_argument("--first-frame-only", action="store_true", help="only the first frame at 10k, beside the bare app")
    parser.add_argument("--against", type=Path, metavar="DIR", help="another expwatch checkout, timed interleaved")
    parser.add_argument("--repeats", type=int, default=None, help="starts per first-frame figure (default 9; --quick 2)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 9)
    idle = 10.0 if args.quick else 30.0
    rows = []
    bare_first_frame(1)  # page cache warm
    for checkout in (ROOT, *([args.against.resolve()] if args.against else [])):
        compile_bytecode(checkout)
    FIRST_FRAME_CPU.clear()
    bare: list[float] = []
    against: tuple[Path, list[float]] | None = (args.against.resolve(), []) if args.against else None
    for n in (10000,) if args.first_frame_only else (1000, 10000):
        FIRST_FRAME_CPU.pop("expwatch", None)
        first, full = first_frame(n, repeats, bare if n == 10000 else None, against if n == 10000 else None)
        rows.append((f"first frame with rows, {n} experiments", f"{statistics.median(first) * 1000:.0f} ms", "<= 1000 ms" if n == 10000 else ""))
        if n == 10000:
            ratio = statistics.median(first) / statistics.median(bare)
            cpu = {k: statistics.median(v) for k, v in FIRST_FRAME_CPU.items()}
            rows.append(("  bare Textual app (one Static), same pty harness", f"{statistics.median(bare) * 1000:.0f} ms", ""))
            rows.append(("  ratio", f"{ratio:.2f}x", f"<= {FIRST_FRAME_RATIO_GOAL}x ({'met' if ratio <= FIRST_FRAME_RATIO_GOAL else 'missed'})"))
            rows.append(("  on-CPU at the first frame: expwatch / bare app", f"{cpu['expwatch']:.0f} / {cpu['bare']:.0f} ms", f"{cpu['expwatch'] / cpu['bare']:.2f}x"))
            if against is not None:
                rows.append((f"  {against[0].name}: first rows, wall / on-CPU", f"{statistics.median(against[1]) * 1000:.0f} / {cpu['against']:.0f} ms",
                             f"{statistics.median(against[1]) / statistics.median(bare):.2f}x / {cpu['against'] / cpu['bare']:.2f}x"))
        rows.append((f"all {n} scanned and shown", f"{statistics.median(full) * 1000:.0f} ms", ""))
    if args.first_frame_only:
        _print(rows)
        return
    load = latency_and_load(10000, 20 if args.quick else 50, 50.0, idle)
    rows += [
        ("change-to-screen latency p50", f"{load['latency_p50_ms']:.0f} ms", "<= 25 ms"),
        ("change-to-screen latency p99", f"{load['latency_p99_ms']:.0f} ms", "<= 150 ms"),
        (f"idle CPU over {idle:.0f} s, 10k experiments", f"{load['idle_cpu_pct']:.2f} %", "<= 0.3 %"),
        ("idle bytes to the terminal", f"{load['idle_bytes_per_s'] / 1024:.2f} KB/s", ""),
        (f"CPU under {load['load_updates_per_s']:.0f} updates/s", f"{load['load_cpu_pct']:.1f} %", "<= 25 %"),
        ("bytes to the terminal under load", f"{load['load_kb_per_s']:.1f} KB/s", "<= 50 KB/s"),
    ]
    _print(rows)


def _print(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>12}  goal")
    print("-" * (width + 28))
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>12}  {goal}")


if __name__ == "__main__":
    main()
