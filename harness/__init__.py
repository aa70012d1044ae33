"""t2i-harness: a plugin-based benchmark harness for text-to-image GANs.

The contract plugins implement is `harness.hookspecs`; the types it exchanges are in `harness.types`.
"""
from harness.plugins import hookimpl
from harness.types import Batch, GenOutput, TextFeatures

__all__ = ["hookimpl", "TextFeatures", "GenOutput", "Batch"]
__version__ = "0.1.0"
