"""Logging set-up for the command line; called only by ``cli``."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "WARNING") -> None:
    """Log to standard error as ``dockzone: LEVEL message`` at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dockzone: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # watchfiles reports every batch of file changes at INFO; the loop says what they did.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
