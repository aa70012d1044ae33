"""t2i-harness: a plugin-based benchmark harness for text-to-image GANs.

The contract plugins implement is `harness.hookspecs`; the types it exchanges are in `harness.types`. The Python
API (`harness.load_run`, `harness.generate`, `harness.LoadedRun`) is `harness.api`, imported on first use.
"""
from harness.plugins import hookimpl
from harness.types import Batch, GenOutput, TextFeatures
from harness.version import __version__

__all__ = ["hookimpl", "TextFeatures", "GenOutput", "Batch", "load_run", "generate", "LoadedRun"]

_API = ("load_run", "generate", "LoadedRun")


def __getattr__(name: str):
    """``harness.load_run`` / ``harness.generate`` / ``harness.LoadedRun`` from ``harness.api``, imported lazily
    (``import harness`` does not import the API's modules: model building, checkpoints, data sets)."""
    if name in _API:
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
