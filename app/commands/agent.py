"""``expwatch agent --hub URL [SOURCE ...]``: publish this host's experiments to a Redis hub."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

NAME = "agent"
HELP = "publish this host's state directories to a Redis hub, for fleet dashboards (expwatch redis://...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directories", nargs="*", metavar="SOURCE", help="state directories to publish (default: $EXPWATCH_STATE_DIR or ./.state)")
    parser.add_argument("--hub", default=None, metavar="URL", help="redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=FLEET], rediss:// for TLS (default: $EXPWATCH_HUB)")
    parser.add_argument("--host-name", default=None, metavar="NAME", help="this host's name in the fleet (default: the hostname)")
    parser.add_argument("--no-gpus", action="store_true", help="publish no GPU snapshots")
    parser.add_argument("--simulate-gpus", type=int, default=None, metavar="N", help="publish N simulated GPUs instead of NVML's (default: $EXPWATCH_SIMULATE_GPUS)")
    # The fleet demo's: simulated GPUs carrying the live workers of the first directory (runtime.demo.DemoGpuSource).
    parser.add_argument("--demo-gpus", type=int, default=None, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--no-actions", action="store_true", help="refuse the actions dashboards ask (resume, mark stale, stop)")
    parser.add_argument("--resume-template", default=os.environ.get("EXPWATCH_RESUME_TEMPLATE"), help="command to resume llenergymeasure experiments here")
    parser.add_argument("--lease", type=float, default=None, metavar="SECONDS", help="lease TTL: a host silent this long shows its running experiments as unknown (default 15)")


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from runtime.agent import LEASE_S, RENEW_S, HubAgent
    from runtime.gpu import make_gpu_source
    from runtime.exit_codes import EXIT_CONFLICT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE
    from state.hub.codec import host_name_from, valid_host_name
    from state.hub.connection import HubAddress, HubError, hub_url_from_env
    from state.hub.schema import Hub, LeaseHeld
    from state.sources import DirectorySource, SourceError, open_sources

    url = args.hub or hub_url_from_env()
    if not url:
        raise CommandError("no hub: pass --hub redis://HOST:6379/0 or set $EXPWATCH_HUB", EXIT_USAGE)
    try:
        address = HubAddress.parse(url)
    except HubError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    host = args.host_name if args.host_name is not None else host_name_from(socket.gethostname())
    if not valid_host_name(host):
        raise CommandError(f"bad --host-name {host!r}: letters, digits, '.', '_' and '-', at most 64", EXIT_USAGE)
    lease = LEASE_S if args.lease is None else args.lease
    if lease < 1:
        raise CommandError("--lease takes at least 1 second", EXIT_USAGE)
    try:
        sources = open_sources(resolve_sources(args, args.directories), read_only=True)
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    foreign = [s.location for s in sources if not isinstance(s, DirectorySource)]
    if foreign:
        raise CommandError(f"an agent publishes state directories only, not {', '.join(foreign)}", EXIT_USAGE)

    def say(text: str) -> None:
        print(f"expwatch agent: {text}", file=sys.stderr, flush=True)

    try:
        gpu_source = None if args.no_gpus else make_gpu_source(args.simulate_gpus)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.demo_gpus is not None and not args.no_gpus:
        from runtime.demo import DemoGpuSource

        if args.demo_gpus < 1:
            raise CommandError("--demo-gpus takes at least 1", EXIT_USAGE)
        gpu_source = DemoGpuSource(sources[0].root, count=args.demo_gpus)  # type: ignore[attr-defined]
    agent = HubAgent(
        Hub(address), sources, host, lease_s=lease, renew_s=min(RENEW_S, lease / 3), on_status=say,  # type: ignore[arg-type]
        gpu_source=gpu_source, accept_actions=not args.no_actions, resume_template=args.resume_template,
    )

    try:
        agent.claim()
    except LeaseHeld as exc:
        raise CommandError(f"{exc}; not starting a second agent for it (stop that one, or pass another --host-name)", EXIT_CONFLICT) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        say(f"watching {', '.join(s.location for s in sources)} as host {host}, hub {address.shown}")
        await agent.run(stop)

    asyncio.run(main())
    if agent.conflict is not None:
        raise CommandError(f"{agent.conflict}: this agent stopped serving the host", EXIT_CONFLICT)
    if agent.failure is not None:
        raise CommandError(f"{agent.failure}: the agent stopped (its lease lapses; restart it)", EXIT_ERROR)
    return 0
