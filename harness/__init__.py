"""t2i-harness: a plugin-based benchmark harness for text-to-image GANs.

The contract plugins implement is `harness.contract.hookspecs`; the types it exchanges are in
`harness.contract.types`. The Python API (`harness.load_run`, `harness.generate`, `harness.LoadedRun`) is
`harness.api`, imported on first use.
"""
import sys

from harness.config import rules as _config_rules
from harness.contract import hookspecs as _hookspecs
from harness.contract import plugins as _plugins
from harness.contract import types as _types
from harness.contract.plugins import hookimpl
from harness.contract.types import Batch, GenOutput, TextFeatures
from harness.util import errors as _errors
from harness.util.version import __version__

__all__ = ["hookimpl", "TextFeatures", "GenOutput", "Batch", "load_run", "generate", "LoadedRun", "__version__"]

_API = ("load_run", "generate", "LoadedRun")

# Module paths that plugins written for the first layout import (`from harness.types import MethodInfo`, ...):
# each names the same module object as its home, so such a plugin runs unchanged.
for _old_path, _module in {"harness.types": _types, "harness.hookspecs": _hookspecs, "harness.plugins": _plugins,
                           "harness.config_rules": _config_rules, "harness.errors": _errors}.items():
    sys.modules.setdefault(_old_path, _module)


def __getattr__(name: str):
    """``harness.load_run`` / ``harness.generate`` / ``harness.LoadedRun`` from ``harness.api``, imported lazily
    (``import harness`` does not import the API's modules: model building, checkpoints, data sets)."""
    if name in _API:
        from harness import api

        return getattr(api, name)
    if name in ("types", "hookspecs", "plugins", "config_rules", "errors"):  # `import harness.types` binds these
        return sys.modules[f"harness.{name}"]
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
