"""dockzone's authoritative DNS server: serves a set of zones, knows nothing of sources.

store = ZoneStore()
ZoneDirectory("zones", store).rescan()          # or store.replace({origin: Zone, ...})
service = DNSService(store, listen=[("127.0.0.1", 0)], forwarder=None)
service.start(); print(service.addresses); ...; service.stop()
"""

from __future__ import annotations

from dnsserver.answer import Resolution, resolve
from dnsserver.errors import DnsServerError, MessageError, ZoneError, ZoneLoadError
from dnsserver.forward import Forwarder, parse_hostport, read_resolv_conf
from dnsserver.server import DNSService
from dnsserver.stats import DNSStats
from dnsserver.zone import RRset, Zone, ZoneBuilder
from dnsserver.zonedir import Rescan, ZoneDirectory
from dnsserver.zonefile import load_zone_file, parse_zone_text
from dnsserver.zonestore import ZoneIndex, ZoneStore

__all__ = [
    "DNSService",
    "DNSStats",
    "DnsServerError",
    "Forwarder",
    "MessageError",
    "RRset",
    "Rescan",
    "Resolution",
    "Zone",
    "ZoneBuilder",
    "ZoneDirectory",
    "ZoneError",
    "ZoneIndex",
    "ZoneLoadError",
    "ZoneStore",
    "load_zone_file",
    "parse_hostport",
    "parse_zone_text",
    "read_resolv_conf",
    "resolve",
]
