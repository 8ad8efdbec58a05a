"""TIGAS: a differentiable, no-reference realism score in [0, 1] (1 = looks like a real photo)."""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "TIGAS": "tigas_core.api",
    "Explanation": "tigas_core.explanation",
    "TIGASConfig": "tigas_core.config",
    "TIGASModel": "tigas_core.model",
    "create_tigas_model": "tigas_core.model",
    "TIGASInputError": "tigas_core.io",
    "load_image": "tigas_core.io",
    "TIGASMetric": "tigas_core.metrics",
    "TIGASLoss": "tigas_core.generator_loss",
    "TIGASScheduler": "tigas_core.generator_loss",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """Import submodules on first use so `import tigas_core` (and `tigas --help`) stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tigas_core' has no attribute {name!r}")
