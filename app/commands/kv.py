"""``expwatch kv ID [KEY]``: an experiment's shared run state (``run.shared``), read while it runs or after.

From the file beside the experiment, or from a hub (``--source redis://...`` or
``--hub URL``) for runners started with ``--hub``. A hub's values are
untrusted like a file's: read with a size limit, each checked on its own (one
that is not JSON is an error for that key: the others are still shown), and
printed through the sanitiser.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from app.commands._common import open_store, store_errors
from state.text import printable

NAME = "kv"
HELP = "show an experiment's shared run state (what its steps stored in run.shared), or one key of it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="experiment id or file name (without .json)")
    parser.add_argument("key", nargs="?", help="one key: print its value alone")
    parser.add_argument("--json", action="store_true", help="the map (or the key's value) as JSON, exactly")
    parser.add_argument("--hub", default=None, metavar="URL",
                        help="read it from this hub (a hub URL given as --source does the same; 'env': $EXPWATCH_HUB's)")
    parser.add_argument("--host", default=None, metavar="NAME",
                        help="in a hub: the host whose experiment ID is meant, when runners on several hosts used that id")


def _shown(value: object) -> str:
    """A string as itself (handy in scripts), anything else as compact JSON; escaped for the terminal."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return printable(text)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from runtime.exit_codes import EXIT_USAGE
    from state.hub.connection import HUB_ENV, hub_url_from_env, is_hub_url

    hub = args.hub
    if hub == "env":
        hub = hub_url_from_env()
        if hub is None:
            raise CommandError(f"--hub env: ${HUB_ENV} is not set", EXIT_USAGE)
    if hub is None:
        first = resolve_sources(args)[0]
        hub = first if is_hub_url(first) else None
    if hub is None:
        if args.host is not None:
            raise CommandError("--host picks a host in a hub: give --hub URL (or a hub URL as --source)", EXIT_USAGE)
        ident, values, errors = _from_file(args)
    else:
        ident, values, errors = _from_hub(args, hub)
    return _print(args, ident, values, errors)


def _from_file(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, str]]:
    from app.cli import CommandError
    from runtime.actions import load_experiment
    from runtime.exit_codes import EXIT_ERROR
    from state.shared import SharedStateError, read_shared

    store = open_store(args, read_only=True)
    with store_errors():
        loaded, record = load_experiment(store, args.id)
    try:
        values = read_shared(store.root, loaded.key, record.experiment_id)
    except SharedStateError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    hub = _recorded_hub(loaded.model)
    if not values and hub is not None:  # its runner kept run.shared in a hub, not beside the file
        print(f"expwatch kv: {printable(record.experiment_id)} keeps its shared run state in a hub: "
              f"expwatch kv {shlex.quote(printable(args.id))} --hub {shlex.quote(printable(hub))}", file=sys.stderr)
    return printable(record.experiment_id), values, {}


def _recorded_hub(model: Any) -> str | None:
    """The ``--hub`` its runner was given, as its resume command records it (``env`` when the URL holds a password)."""
    from runtime.runner.args import ResumeArgs

    resume = getattr(model, "resume", None)
    parsed = ResumeArgs.from_command(resume.argv) if resume is not None else None
    return parsed[0].hub if parsed is not None else None


def _from_hub(args: argparse.Namespace, url: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The map of experiment ``args.id`` in the hub: values, and the keys whose value cannot be shown (why)."""
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE
    from state.hub.codec import valid_host_name
    from state.hub.connection import HubAddress, HubError
    from state.hub.schema import Hub
    from state.hub.shared import HubSharedState, hosts_with_shared

    try:
        hub = Hub(HubAddress.parse(url))
    except HubError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    ident = printable(args.id)
    if args.host is not None and not valid_host_name(args.host):
        raise CommandError(f"bad --host '{printable(args.host)}': letters, digits, '.', '_' and '-', at most 64", EXIT_USAGE)
    try:
        hosts = hosts_with_shared(hub, args.id)
        if args.host is not None:
            if args.host not in hosts:
                known = ", ".join(printable(h) for h in hosts) or "none"
                raise CommandError(f"no shared run state of {ident} from host {printable(args.host)} in the hub "
                                   f"{hub.address.shown} (hosts with one: {known})", EXIT_NOT_FOUND)
            host = args.host
        elif not hosts:
            raise CommandError(f"no shared run state of {ident} in the hub {hub.address.shown} (a runner keeps it "
                               "there when started with --hub)", EXIT_NOT_FOUND)
        elif len(hosts) > 1:
            raise CommandError(f"{ident} has shared run state from several hosts: {', '.join(printable(h) for h in hosts)}: "
                               "pick one with --host NAME", EXIT_USAGE)
        else:
            host = hosts[0]
        shared = HubSharedState(hub, host, args.id)
        entries = shared.read(args.key)
        if args.key is not None and not entries:
            entries = shared.read()  # for the message that lists the keys there are
    except HubError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    finally:
        hub.close()
    values = {e.key: e.value for e in entries if e.error is None}
    errors = {e.key: e.error for e in entries if e.error is not None}
    return f"{ident} on {host}", values, errors


def _print(args: argparse.Namespace, ident: str, values: dict[str, Any], errors: dict[str, str]) -> int:
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR, EXIT_NOT_FOUND

    if args.key is not None:
        if args.key in errors:
            raise CommandError(f"{ident}: the value of '{printable(args.key)}' {printable(errors[args.key])}", EXIT_ERROR)
        if args.key not in values:
            known = ", ".join(printable(k) for k in sorted(values)[:20]) or "none"
            raise CommandError(f"{ident} has no shared key {printable(args.key)!r} (keys: {known})", EXIT_NOT_FOUND)
        value = values[args.key]
        print(json.dumps(value, allow_nan=False) if args.json else _shown(value))
        return 0
    for key, why in sorted(errors.items()):
        print(f"expwatch kv: {ident}: the value of '{printable(key)}' {printable(why)}", file=sys.stderr)
    if args.json:
        print(json.dumps(values, indent=2, allow_nan=False))
    elif not values and not errors:
        print(f"{ident}: no shared run state")
    elif values:
        width = min(40, max(len(printable(k)) for k in values))
        for key in sorted(values):
            print(f"{printable(key).ljust(width)}  {_shown(values[key])}")
    return EXIT_ERROR if errors else 0
