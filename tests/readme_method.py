"""The README's example method plugin ("Writing a method plugin"), loaded from the README's code blocks into a
temporary package, for tests that run it beside the built-in methods."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from harness.contract.plugins import Plugins, build_plugins

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_method_plugins(directory: Path) -> Plugins:
    """The installed plugins plus the README's ``mymethod`` (its ``__init__.py`` and ``defaults.yaml`` written
    under ``directory``; imported by file location, without touching ``sys.path``)."""
    text = README.read_text()
    (python_block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (yaml_block,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    pkg = directory / "mymethod"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(python_block)
    (pkg / "defaults.yaml").write_text(yaml_block)
    spec = importlib.util.spec_from_file_location("readme_mymethod", pkg / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return build_plugins(extra=[module])
