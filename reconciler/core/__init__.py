"""The pure core: record model, name rules, zone build, incremental index, plan, serials,
ownership markers and the ``Wakeup`` every trigger sets. Nothing here does I/O; an
import-linter contract keeps it that way (pyproject.toml)."""
