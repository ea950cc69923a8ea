"""dockzone's authoritative DNS server: serves a set of zones, knows nothing of sources.

store = ZoneStore()
ZoneDirectory("zones", store).rescan()          # or store.replace({origin: Zone, ...})
store.patch({origin: {(name, "A"): rrset_from_text(origin, name, "A", 30, ["10.0.0.1"])}})
service = DNSService(store, listen=[("127.0.0.1", 0)], forwarder=None)
service.start(); print(service.addresses); ...; service.stop()
"""

from __future__ import annotations

from dnsserver.answer import Resolution, resolve
from dnsserver.errors import DnsServerError, MessageError, ZoneError, ZoneLoadError
from dnsserver.forward import Forwarder, parse_hostport, read_resolv_conf
from dnsserver.notify import Notifier
from dnsserver.rdata import ADDRESS_CNAME
from dnsserver.server import DNSService
from dnsserver.stats import DNSStats
from dnsserver.transfer import TransferKey, TransferPolicy, Transfers
from dnsserver.zone import PatchKey, RRset, Zone, ZoneBuilder, rrset_from_text
from dnsserver.zonedir import Rescan, ZoneDirectory
from dnsserver.zonefile import load_zone_file, parse_zone_text
from dnsserver.zonestore import ZoneIndex, ZoneStore

__all__ = [
    "ADDRESS_CNAME",
    "DNSService",
    "DNSStats",
    "DnsServerError",
    "Forwarder",
    "MessageError",
    "Notifier",
    "PatchKey",
    "RRset",
    "Rescan",
    "Resolution",
    "TransferKey",
    "TransferPolicy",
    "Transfers",
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
    "rrset_from_text",
]
