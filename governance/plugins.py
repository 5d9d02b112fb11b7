"""Finding the optional per-domain modules (``endpoints``, ``cli``) that exist."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def optional_module(name: str) -> ModuleType | None:
    """Import ``name`` if it exists; None if it (or its package) does not.

    An import error *inside* an existing module is raised, never hidden.
    """
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    if spec is None:
        return None
    return importlib.import_module(name)
