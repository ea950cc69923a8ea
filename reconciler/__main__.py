"""``python -m reconciler`` runs the ``dockzone`` command line."""

from __future__ import annotations

from reconciler.cli import main

raise SystemExit(main())
