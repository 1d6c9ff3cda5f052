"""``expwatch kv ID [KEY]``: an experiment's shared run state (``run.shared``), read while it runs or after."""

from __future__ import annotations

import argparse
import json

from app.commands._common import open_store, store_errors
from state.text import printable

NAME = "kv"
HELP = "show an experiment's shared run state (what its steps stored in run.shared), or one key of it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="experiment id or file name (without .json)")
    parser.add_argument("key", nargs="?", help="one key: print its value alone")
    parser.add_argument("--json", action="store_true", help="the map (or the key's value) as JSON, exactly")


def _shown(value: object) -> str:
    """A string as itself (handy in scripts), anything else as compact JSON; escaped for the terminal."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return printable(text)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.actions import load_experiment
    from runtime.exit_codes import EXIT_ERROR, EXIT_NOT_FOUND
    from state.shared import SharedStateError, read_shared

    store = open_store(args, read_only=True)
    with store_errors():
        loaded, record = load_experiment(store, args.id)
    try:
        values = read_shared(store.root, loaded.key, record.experiment_id)
    except SharedStateError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    ident = printable(record.experiment_id)
    if args.key is not None:
        if args.key not in values:
            known = ", ".join(printable(k) for k in sorted(values)[:20]) or "none"
            raise CommandError(f"{ident} has no shared key {printable(args.key)!r} (keys: {known})", EXIT_NOT_FOUND)
        value = values[args.key]
        print(json.dumps(value, ensure_ascii=False) if args.json else _shown(value))
        return 0
    if args.json:
        print(json.dumps(values, ensure_ascii=False, indent=2))
        return 0
    if not values:
        print(f"{ident}: no shared run state")
        return 0
    width = min(40, max(len(printable(k)) for k in values))
    for key in sorted(values):
        print(f"{printable(key).ljust(width)}  {_shown(values[key])}")
    return 0
