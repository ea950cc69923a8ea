"""Sources: where desired records come from (definitions files now; Docker, the API and
Kubernetes later)."""

from __future__ import annotations
