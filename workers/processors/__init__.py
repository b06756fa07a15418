"""Processor registry: job type name → function(payload) -> JSON-safe result (the registry itself:
registry.py; importing this package imports every processor module, so their @register decorators run)."""
from __future__ import annotations

from workers.processors.registry import _PROCESSORS, Processor, get, register, registered, replace

__all__ = ["_PROCESSORS", "Processor", "get", "register", "registered", "replace"]

# Import the processor modules so their @register decorators run.
from workers.processors import (  # noqa: E402,F401
    acquisition_maintenance,
    diagnostic,
    download,
    library,
    maintenance,
    monitor,
    notify,
    organize,
    search,
)
