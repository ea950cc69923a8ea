"""dockzone's authoritative DNS server: serves a set of zones, knows nothing of sources."""

from __future__ import annotations

__all__: list[str] = []
