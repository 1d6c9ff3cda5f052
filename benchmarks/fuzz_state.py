"""Long fuzz run of format detection and parsing (the CI test runs a few hundred examples).

Feeds arbitrary bytes, arbitrary JSON and near-valid experiments to
``parse_state`` (and ``summarize`` on what parses) for N seconds; anything but
``BrokenStateFile`` or ``NotAnExperiment`` escaping, or one input taking more
than --deadline-ms, is a failure, printed with the input. Run:

    .venv/bin/python benchmarks/fuzz_state.py --seconds 300
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import DeadlineExceeded  # noqa: E402

from tests.hardening.fuzz_strategies import check_parse, hostile_bytes  # noqa: E402


class _TimeUp(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--deadline-ms", type=float, default=2000.0, help="longest one input may take")
    parser.add_argument("--quick", action="store_true", help="10 seconds")
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    outcomes: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + seconds
    rounds = 0

    @settings(max_examples=10**9, deadline=timedelta(milliseconds=args.deadline_ms), database=None,
              suppress_health_check=list(HealthCheck))
    @given(hostile_bytes)
    def fuzz(data: bytes) -> None:
        if time.monotonic() > end:
            raise _TimeUp
        outcomes[check_parse(data)] += 1

    started = time.monotonic()
    while time.monotonic() < end:
        rounds += 1
        try:
            fuzz()
        except _TimeUp:
            break
        except DeadlineExceeded as exc:
            print(f"FAIL: an input took longer than {args.deadline_ms:.0f} ms: {exc}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started
    total = sum(outcomes.values())
    print(f"{'measure':<40}  {'value':>12}")
    print("-" * 56)
    print(f"{'fuzz inputs, parse_state + summarize':<40}  {total:>12}")
    print(f"{'inputs per second':<40}  {total / elapsed:>12.0f}")
    for name, count in sorted(outcomes.items()):
        print(f"{'  -> ' + name:<40}  {count:>12}")
    print(f"{'unexpected exceptions':<40}  {0:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
