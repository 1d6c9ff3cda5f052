"""``expwatch list``: every experiment in the state directory, one row each."""

from __future__ import annotations

import argparse
import gc
from operator import attrgetter
from datetime import datetime
from typing import Any

from app.commands._common import age_of, open_sources, print_json, table
from app.commands._list_json import ListedRow, broken_json, listed_reader, record_json, verdict_json
from state.record import BrokenRecord, Entry, ExperimentRecord, StateFormat
from state.sources import DirectorySource
from state.transitions import ExperimentStatus
from state.verdict import StaleVerdict, is_stale

NAME = "list"
HELP = "list the experiments in the state directory (status, owner verdict, progress)"
#: It only reads and prints: run as a process, it ends without the interpreter's teardown (``app.cli.end_at_once``).
ENDS_AT_ONCE = True

#: The statuses rows have, the words of the files that say more (a study's), and the two judged ones.
STATUSES = [s.value for s in ExperimentStatus] + ["unknown", "timed_out", "circuit_breaker", "broken", "stale"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON array, one object per experiment")
    form.add_argument("--md", action="store_true", help="a Markdown table")
    parser.add_argument(
        "--status",
        action="append",
        metavar="S",
        help=f"only these statuses (repeat or comma-separate): {', '.join(STATUSES)} "
        "(stale: running, every owner dead; as /stale in the dashboard)",
    )


def _statuses(given: list[str] | None) -> set[str] | None:
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_USAGE

    if not given:
        return None
    wanted = {s.strip().lower() for item in given for s in item.split(",") if s.strip()}
    if not wanted:
        raise CommandError(f"--status needs a status (known: {', '.join(STATUSES)})", EXIT_USAGE)
    unknown = wanted - set(STATUSES)
    if unknown:
        raise CommandError(f"unknown status {', '.join(sorted(unknown))} (known: {', '.join(STATUSES)})", EXIT_USAGE)
    return wanted


def _wanted(entry: Entry | ListedRow, wanted: set[str]) -> bool:
    """Its status, or its file's own word for it (a study's ``timed_out``), is one of ``wanted``."""
    return entry.status in wanted or getattr(entry, "raw_status", None) in wanted


def _sorted(entries: list[Entry | ListedRow]) -> list[Entry | ListedRow]:
    """``entries`` in ``_sort_key`` order: the newest first, broken ones last, each by key where alike.

    Where all are ``ListedRow`` (a directory of llenergymeasure files, as ``list --json`` reads
    it) two stable sorts on their attributes give that order without a call per entry."""
    if all(type(e) is ListedRow for e in entries):
        entries.sort(key=attrgetter("key"))
        entries.sort(key=attrgetter("updated"), reverse=True)  # stable: equal times keep their keys' order
        return entries
    return sorted(entries, key=_sort_key)


def _sort_key(entry: ExperimentRecord | BrokenRecord | ListedRow) -> tuple[int, float, str]:
    if isinstance(entry, BrokenRecord):
        return (1, 0.0, entry.key)
    if isinstance(entry, ListedRow):
        return (0, -entry.updated, entry.key)
    when = entry.last_updated or entry.started_at
    return (0, -(when.timestamp() if when else 0.0), entry.key)


def _entry_json(source: str, entry: Entry | ListedRow, verdict: StaleVerdict | None) -> dict[str, Any] | bytes:
    """The object printed for ``entry``, or its text where the reader wrote it out (``written``: a row
    that is not running, its source named); each is made for this one listing, so completed in place."""
    if isinstance(entry, ListedRow):
        out = entry.json
        if type(out) is bytes:
            return out
        if verdict is not None:
            out["verdict"] = verdict_json(verdict)
    else:
        out = broken_json(entry) if isinstance(entry, BrokenRecord) else record_json(entry, verdict)
    out["source"] = source
    out["host"] = entry.host
    return out


def _status_cell(record: ExperimentRecord, verdict: StaleVerdict | None) -> str:
    # A study's own word (circuit_breaker, timed_out) says more than the status it maps to.
    status = record.raw_status if record.format is StateFormat.LEM_STUDY and record.raw_status else record.status
    if verdict is None:
        return status
    if verdict.is_dead:
        return f"{status} (STALE: owner dead)"
    if verdict.is_alive:
        return f"{status} (alive)"
    return f"{status} (owner unknown)"


def _progress(record: ExperimentRecord) -> str:
    if not record.runs_total and not record.runs_done:
        return "-"
    text = f"{record.runs_done}/{record.runs_total}"
    if record.runs_failed:
        text += f" ({record.runs_failed} failed)"
    return text


def run(args: argparse.Namespace) -> int:
    # A listing keeps every record it reads until it prints, and they hold no reference
    # cycles: a collection pass only walks them again (8-13 % of a cold scan's CPU).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _list(args)
    finally:
        if collecting:
            gc.enable()


def _list(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR
    from runtime.liveness import LocalProbe
    from state.hub.connection import HubError

    wanted = _statuses(args.status)
    sources = open_sources(args)
    if args.json:
        for source in sources:
            if isinstance(source, DirectorySource):
                source.store.reader = listed_reader(source.store.root, source.name)  # printed as read: no summary row for most files
    several = len(sources) > 1
    probe = LocalProbe()
    now = datetime.now().astimezone()
    listed: list[tuple[str, Entry, StaleVerdict | None]] = []
    for source in sources:
        try:
            source.reconcile()  # one full pass: the batches the dashboard shows as they come only cost a second one
        except HubError as exc:
            raise CommandError(str(exc), EXIT_ERROR) from None
        except OSError as exc:  # the directory itself: its files' errors are broken rows
            raise CommandError(f"cannot read {source.location}: {exc.strerror or exc}", EXIT_ERROR) from None
        entries = _sorted(list(source.entries().values()))
        if wanted is not None:  # "stale" keeps the running ones until their verdicts say
            entries = [e for e in entries if _wanted(e, wanted) or ("stale" in wanted and e.status == "running")]
        verdicts = source.judge([e.judged or e if isinstance(e, ListedRow) else e for e in entries], probe, now)
        if wanted is not None and "stale" in wanted:
            entries = [e for e in entries if _wanted(e, wanted) or is_stale(e.status, verdicts.get(e.key))]
        listed += [(source.name, e, verdicts.get(e.key)) for e in entries]
    if args.json:
        print_json([_entry_json(name, e, verdict) for name, e, verdict in listed])
        return 0
    hosts = any(e.host for _n, e, _v in listed)
    rows = [["SOURCE"] * several + ["HOST"] * hosts + ["ID", "STATUS", "RUNS", "PROCS", "AGE", "FORMAT"]]
    for name, entry, verdict in listed:
        where = [name] * several + [entry.host or "-"] * hosts
        if isinstance(entry, BrokenRecord):
            rows.append(where + [entry.key, f"broken: {entry.reason}", "-", "-", "-", "-"])
            continue
        procs = f"{entry.processes_done}/{entry.processes_total}" if entry.processes_total else "-"
        rows.append(where + [
            entry.experiment_id,
            _status_cell(entry, verdict),
            _progress(entry),
            procs,
            age_of(entry.last_updated, now),
            entry.format.value,
        ])
    if len(rows) == 1 and not args.md:
        places = ", ".join(s.location for s in sources)
        print(f"no experiments in {places}" + (" with that status" if wanted else ""))
        return 0
    print(table(rows, markdown=args.md))
    return 0
