"""`python -m dnsserver --zones DIR --listen 127.0.0.1:5354`: serve a zone directory.

Rescans the directory every `--interval` seconds (only changed files are parsed) until
SIGINT or SIGTERM. `dockzone serve` wraps the same pieces.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from dnsserver.forward import Forwarder, parse_hostport
from dnsserver.server import DNSService
from dnsserver.zonedir import ZoneDirectory
from dnsserver.zonestore import ZoneStore


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m dnsserver", description=__doc__)
    parser.add_argument("--zones", required=True, help="directory of db.<zone> files")
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ADDR:PORT",
        help="address to serve on (repeatable; default 127.0.0.1:5354)",
    )
    parser.add_argument(
        "--nameserver",
        action="append",
        default=[],
        metavar="ADDR[:PORT]",
        help="upstream for names outside the zones (repeatable; default: /etc/resolv.conf)",
    )
    parser.add_argument("--no-rec", action="store_true", help="refuse names outside the zones")
    parser.add_argument("--no-rotate", action="store_true", help="do not rotate A/AAAA answers")
    parser.add_argument("--interval", type=float, default=1.0, help="rescan period in seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    forwarder: Forwarder | None = None
    if not args.no_rec:
        if args.nameserver:
            forwarder = Forwarder([parse_hostport(text) for text in args.nameserver])
        else:
            forwarder = Forwarder.from_resolv_conf()
    store = ZoneStore()
    directory = ZoneDirectory(args.zones, store)
    directory.rescan()
    listen = [parse_hostport(text, 5354) for text in args.listen] or [("127.0.0.1", 5354)]
    service = DNSService(store, listen, forwarder=forwarder, rotate=not args.no_rotate)
    try:
        service.start()
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        "serving " + ", ".join(f"{h}:{p}" for h, p in service.addresses),
        file=sys.stderr,
        flush=True,
    )
    while not done.wait(args.interval):
        directory.rescan()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
