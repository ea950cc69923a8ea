"""DNSSEC primitives (RFC 4033-4035): keys, key tags, DS digests, RRSIG and NSEC rdata.

Pure functions over the wire forms `dnsserver` keeps (`RRset.rdatas` are uncompressed rdata
with lower-case names, which is the canonical form of RFC 4034 §6.2 for every type this
server writes). Signing uses the `cryptography` package (dnspython's DNSSEC support needs
it too); the signer that decides what to sign and when is `dnsserver.signer`.

Algorithms: ECDSAP256SHA256 (13, the default, as BIND's `dnssec-policy default`) and
ED25519 (15).
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dnsserver.name import name_to_wire, split_labels
from dnsserver.zone import RRset

DS = 43
RRSIG = 46
NSEC = 47
DNSKEY = 48
DNSSEC_TYPES = frozenset({RRSIG, NSEC, DNSKEY})

ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {"ECDSAP256SHA256": ECDSAP256SHA256, "ED25519": ED25519}
"""Algorithm numbers by the mnemonic `--dnssec-algorithm` takes."""

ZONE_KEY = 0x0100  # DNSKEY flags: a zone key
SEP = 0x0001  # secure entry point: the key the parent's DS points at (KSK or CSK)
PROTOCOL = 3

_Private = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SigningKey:
    """A private key of a zone with its DNSKEY rdata and key tag."""

    __slots__ = ("_private", "algorithm", "dnskey", "flags", "tag")

    def __init__(self, private: _Private, algorithm: int, flags: int) -> None:
        if algorithm == ECDSAP256SHA256:
            if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1
            ):
                raise ValueError("ECDSAP256SHA256 needs a P-256 key")
            numbers = private.public_key().public_numbers()
            public = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        elif algorithm == ED25519:
            if not isinstance(private, ed25519.Ed25519PrivateKey):
                raise ValueError("ED25519 needs an Ed25519 key")
            public = private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        else:
            raise ValueError(f"unsupported DNSSEC algorithm {algorithm}")
        self._private = private
        self.algorithm = algorithm
        self.flags = flags
        self.dnskey = struct.pack("!HBB", flags, PROTOCOL, algorithm) + public
        self.tag = key_tag(self.dnskey)

    @classmethod
    def generate(cls, algorithm: int = ECDSAP256SHA256, flags: int = ZONE_KEY | SEP) -> SigningKey:
        """A new key (flags 257: a KSK or combined key; 256: a ZSK)."""
        if algorithm == ECDSAP256SHA256:
            return cls(ec.generate_private_key(ec.SECP256R1()), algorithm, flags)
        if algorithm == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate(), algorithm, flags)
        raise ValueError(f"unsupported DNSSEC algorithm {algorithm}")

    @classmethod
    def from_pem(cls, pem: bytes, algorithm: int, flags: int) -> SigningKey:
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError("not an ECDSA or Ed25519 private key")
        return cls(private, algorithm, flags)

    def to_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sep(self) -> bool:
        """True for a key with the SEP flag (a KSK or a combined signing key)."""
        return bool(self.flags & SEP)

    def sign(self, data: bytes) -> bytes:
        """The signature field of an RRSIG over `data` (RFC 6605 r||s, RFC 8080 raw)."""
        private = self._private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(data)
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return f"<SigningKey alg={self.algorithm} flags={self.flags} tag={self.tag}>"


def key_tag(dnskey: bytes) -> int:
    """RFC 4034 Appendix B key tag of DNSKEY rdata."""
    total = 0
    for index, byte in enumerate(dnskey):
        total += byte if index & 1 else byte << 8
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def ds_rdata(owner: str, dnskey: bytes, digest_type: int = 2) -> bytes:
    """DS rdata for a DNSKEY at `owner` (digest 2: SHA-256, 4: SHA-384)."""
    algorithm = dnskey[3]
    data = name_to_wire(owner) + dnskey
    if digest_type == 2:
        digest = hashlib.sha256(data).digest()
    elif digest_type == 4:
        digest = hashlib.sha384(data).digest()
    else:
        raise ValueError(f"unsupported DS digest type {digest_type}")
    return struct.pack("!HBB", key_tag(dnskey), algorithm, digest_type) + digest


def ds_text(owner: str, dnskey: bytes, ttl: int = 3600, digest_type: int = 2) -> str:
    """A DS record in master-file form, for the parent zone's operator."""
    rdata = ds_rdata(owner, dnskey, digest_type)
    tag, algorithm, digest = struct.unpack("!HBB", rdata[:4])
    return f"{owner} {ttl} IN DS {tag} {algorithm} {digest} {rdata[4:].hex().upper()}"


def label_count(owner: str) -> int:
    """RRSIG Labels field: labels of the owner without the root and a leading `*`."""
    labels = split_labels(owner)
    if labels and labels[0] == "*":
        return len(labels) - 1
    return len(labels)


def rrsig_rdata(
    key: SigningKey, signer: str, rrset: RRset, *, inception: int, expiration: int
) -> bytes:
    """RRSIG rdata over one RRset (RFC 4034 §3.1.8.1: the RRSIG's own fields, then every
    record in canonical form and order), made by `key` of zone `signer`. The RRset's owner
    is the name as stored (`*.example.` for a wildcard)."""
    owner, rdtype, ttl, rdatas = rrset
    head = struct.pack(
        "!HBBIIIH",
        rdtype,
        key.algorithm,
        label_count(owner),
        ttl,
        expiration & 0xFFFFFFFF,
        inception & 0xFFFFFFFF,
        key.tag,
    ) + name_to_wire(signer)
    prefix = name_to_wire(owner) + struct.pack("!HHI", rdtype, 1, ttl)
    data = bytearray(head)
    for rdata in sorted(rdatas):
        data += prefix
        data += len(rdata).to_bytes(2, "big")
        data += rdata
    return head + key.sign(bytes(data))


def rrsig_covered(rdata: bytes) -> int:
    """The type an RRSIG covers."""
    return (rdata[0] << 8) | rdata[1]


def rrsig_expiration(rdata: bytes) -> int:
    return int.from_bytes(rdata[8:12], "big")


def rrsig_key_tag(rdata: bytes) -> int:
    return int.from_bytes(rdata[16:18], "big")
