"""``expwatch serve``: the dashboard in a browser (textual-serve), always read-only."""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import sys
from pathlib import Path

NAME = "serve"
HELP = "serve the dashboard to a web browser, read-only (bound to 127.0.0.1 by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", help="state directory")  # a str: Path() would fold a URL's '//'
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command_line(state_dir: Path) -> str:
    """The dashboard command each browser session runs: always --read-only."""
    return shlex.join([sys.executable, "-m", "app.cli", "dashboard", str(state_dir.resolve()), "--read-only"])


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from app.commands._common import require_directory

    state_dir = require_directory(args.directory or resolve_sources(args)[0], NAME)
    try:
        from textual_serve.server import Server
    except ImportError:
        raise CommandError("expwatch serve needs textual-serve: pip install 'expwatch[serve]'") from None
    if not is_loopback(args.host):
        print(
            f"WARNING: serving on {args.host}:{args.port} makes the dashboard (read-only) visible to anyone "
            "who can reach this address. There is no authentication; prefer 127.0.0.1 with an SSH tunnel.",
            file=sys.stderr,
        )
    Server(command_line(state_dir), host=args.host, port=args.port, title="expwatch (read-only)").serve()
    return 0
