"""Run every benchmark script in this folder and print their tables in sequence.

Each runs as a subprocess (``--quick`` passed where its ``--help`` offers it),
under the machine facts (CPU, cores, RAM, Python, date, load). A script that
fails is reported with its exit code and the tail of its output; the others
still run. Run:

    .venv/bin/python benchmarks/run_all.py [--quick] [--only bench_state bench_scale] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ORDER = ["bench_state", "bench_telemetry", "bench_cli", "bench_dashboard", "bench_runner", "bench_vs_mltraq",
         "bench_inspector", "bench_scale", "bench_mltraq", "bench_hub", "fuzz_state"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_facts() -> list[tuple[str, str]]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        ("date", datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", cpu_model()),
        ("cores", str(os.cpu_count())),
        ("RAM", ram_gib()),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("load average at start", " ".join(f"{x:.2f}" for x in load)),
    ]


def scripts(only: list[str] | None) -> list[Path]:
    # Benchmarks print tables; stress scripts (stress_*) are load tests and are left out.
    found = {p.stem: p for p in HERE.glob("*.py") if p.stem.startswith("bench_") or p.stem == "fuzz_state"}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    if only:
        names = [n for n in names if n in only]
    return [found[n] for n in names]


def supports_quick(script: Path) -> bool:
    """Whether the script's argparse offers --quick (asked through --help, not guessed)."""
    try:
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and "--quick" in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script that takes it")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (file stems)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per script")
    args = parser.parse_args()
    facts = machine_facts()
    width = max(len(k) for k, _ in facts)
    print("machine")
    for key, value in facts:
        print(f"  {key:<{width}}  {value}")
    print()
    failures = 0
    summary: list[tuple[str, str, str]] = []
    for script in scripts(args.only):
        argv = [sys.executable, str(script)]
        if args.quick and supports_quick(script):
            argv.append("--quick")
        shown = " ".join([".venv/bin/python", str(script.relative_to(ROOT)), *argv[2:]])
        print(f"== {script.stem}   ({shown})")
        sys.stdout.flush()
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            code = -1
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = f"timed out after {args.timeout:.0f} s"
        elapsed = time.perf_counter() - started
        print(out.rstrip() or "(no output)")
        if code != 0:
            failures += 1
            tail = "\n".join(err.strip().splitlines()[-15:])
            print(f"!! {script.stem} failed (exit {code}):\n{tail}")
        print()
        summary.append((script.stem, "ok" if code == 0 else f"exit {code}", f"{elapsed:.0f} s"))
    print("scripts")
    for name, status, took in summary:
        print(f"  {name:<20} {status:<8} {took:>6}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
