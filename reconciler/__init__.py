"""dockzone's reconciler: desired DNS records from many sources, converged onto sinks.

The public names below are what other programs (and the operator) may import; the CLI is
``reconciler.cli.main``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
