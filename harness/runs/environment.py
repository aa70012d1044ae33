"""``harness env``: what a bug report needs, as text or (``--json``) as one JSON object.

The report holds the harness (version, where it is imported from), Python, the platform, torch and torchvision,
torch's CUDA build and cuDNN, whether CUDA is available, the devices (every visible CUDA device with its compute
capability, memory and native bf16 support; the CPU with its thread count), the other dependencies and the
optional packages (a version, or ``"not installed"``), the installed method plugins, every announced weight file
with its status (``harness.core.weights.weight_status``: present / prefix-checked only / unverified / wrong hash /
missing) and the environment variables that change where the harness looks for things and what it downloads.

Collecting it never fails on what it reports: a package that is absent reads ``"not installed"``; a plugin set
that does not load, a CUDA query that raises, or a torchvision that does not import reads ``"error: ..."``. Nothing
is downloaded and no weight file is loaded (files are hashed to check them, as ``harness weights`` does).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TYPE_CHECKING

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

NOT_INSTALLED = "not installed"

# distribution names (as pip knows them) of the dependencies besides torch and torchvision
PACKAGES = ("pluggy", "pandas", "pyyaml", "numpy", "scipy", "pillow", "tqdm", "packaging")
# needed by some metrics or outputs only, or changing what a library does: IS/FID/KID (torch-fidelity), CLIP
# scores (openai-clip), plots (matplotlib), pandas' Styler (jinja2), TensorBoard logs in training (tensorboard)
OPTIONAL_PACKAGES = ("torch-fidelity", "openai-clip", "matplotlib", "jinja2", "tensorboard")
# environment variables that change where the harness looks for weights, results and devices, and what it fetches
ENV_VARS = ("HARNESS_WEIGHTS", "HARNESS_RESULTS", "HARNESS_OFFLINE", "HARNESS_MIRROR", "HARNESS_FETCH", "TORCH_HOME",
            "CUDA_VISIBLE_DEVICES")
# native bf16 arithmetic: compute capability 8.0 (Ampere) and newer
BF16_CAPABILITY = (8, 0)


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (a pip name, e.g. ``"torch-fidelity"``), else ``"not installed"``.

    Reads the installed metadata only: the package is not imported."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def _error(e: BaseException) -> str:
    return f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the report names any failure instead of raising it
        return _error(e)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cuda_devices() -> list[dict]:
    import torch

    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        capability = (p.major, p.minor)
        out.append({"type": "cuda", "index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1), "bf16": capability >= BF16_CAPABILITY})
    return out


def _torch_report() -> dict[str, Any]:
    import torch

    cuda_available = bool(torch.cuda.is_available())
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    devices = _guard(_cuda_devices) if cuda_available else []
    cpu = {"type": "cpu", "name": cpu_name(), "threads": torch.get_num_threads(), "cores": os.cpu_count()}
    cuda_list = devices if isinstance(devices, list) else []
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none (CPU build)",
        "cuda_available": cuda_available,
        "cudnn": str(cudnn) if cudnn else "not available",
        "devices": (cuda_list + [cpu]) if isinstance(devices, list) else [devices, cpu],
        # what `train.amp=auto` gets: bf16 autocast on CUDA; the CPU trains in fp32
        "bf16": bool(cuda_list) and all(d["bf16"] for d in cuda_list),
    }


def _weights_report(plugins: Plugins) -> dict[str, Any]:
    from harness.core.weights import search_dirs, weight_status

    files = {r["name"]: {"status": r["status"], "path": r["path"], "filenames": r["filenames"]}
             for r in weight_status(plugins)}
    return {"searched": [str(d) for d in search_dirs(plugins.weights_dir)], "files": files}


def collect_environment(plugins: Plugins | None = None) -> dict[str, Any]:
    """The ``harness env`` report as a JSON-ready dict.

    plugins: a plugin set (``harness.contract.plugins.build_plugins``) whose weight registry and methods are
    listed; None builds the installed one (a failure to build it is reported, not raised).
    Keys: harness, harness_path, python, python_executable, platform, torch, torchvision, cuda, cuda_available,
    cudnn, devices, bf16, packages, optional, plugins, weights, environment."""
    from harness.util.version import __version__, library_versions

    report: dict[str, Any] = {
        "harness": __version__,
        "harness_path": str(Path(__file__).resolve().parents[1]),  # the harness package
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
    }
    torch_part = _guard(_torch_report)
    if isinstance(torch_part, str):  # torch itself failed: keep the keys, each naming the failure
        torch_part = {k: torch_part for k in ("torch", "cuda", "cuda_available", "cudnn", "devices", "bf16")}
    report.update({"torch": torch_part.pop("torch"), "torchvision": _guard(lambda: library_versions()["torchvision"])})
    report.update(torch_part)
    report["packages"] = {name: package_version(name) for name in PACKAGES}
    report["optional"] = {name: package_version(name) for name in OPTIONAL_PACKAGES}
    if plugins is None:
        from harness.contract.plugins import build_plugins

        plugins = _guard(build_plugins)
    if isinstance(plugins, str):
        report["plugins"] = plugins
        report["weights"] = f"unknown ({plugins})"
    else:
        report["plugins"] = _guard(lambda: sorted(plugins.methods()))
        report["weights"] = _guard(lambda: _weights_report(plugins))
    report["environment"] = {v: os.environ.get(v) for v in ENV_VARS}
    return report


def _device_line(d: Any) -> str:
    if not isinstance(d, dict):
        return str(d)
    if d["type"] == "cpu":
        return f"cpu: {d['name']} ({d['threads']} torch threads, {d['cores']} cores)"
    bf16 = "bf16" if d["bf16"] else "no native bf16"
    return f"cuda:{d['index']}: {d['name']} (compute capability {d['capability']}, {d['memory_gib']} GiB, {bf16})"


def format_environment(report: dict[str, Any]) -> str:
    """The text of ``harness env`` (one fact per line; paste it into a bug report)."""
    cuda_available = report["cuda_available"]
    if isinstance(cuda_available, bool):
        cuda_available = "yes" if cuda_available else "no"
    bf16 = report["bf16"]
    if bf16 is True:
        bf16 = "yes (every CUDA device has native bf16: train.amp=auto trains with bf16 autocast)"
    elif bf16 is False:
        bf16 = "no (" + ("a CUDA device lacks native bf16" if report["cuda_available"] is True
                         else "no CUDA device: training runs in fp32 on the CPU") + ")"
    lines = [
        f"harness       {report['harness']} ({report['harness_path']})",
        f"python        {report['python']} ({report['python_executable']})",
        f"platform      {report['platform']}",
        f"torch         {report['torch']}",
        f"torchvision   {report['torchvision']}",
        f"cuda          {report['cuda']} (available: {cuda_available})",
        f"cudnn         {report['cudnn']}",
        f"bf16          {bf16}",
        "devices",
    ]
    devices = report["devices"] if isinstance(report["devices"], list) else [report["devices"]]
    lines += [f"  {_device_line(d)}" for d in devices]
    for title, key in (("packages", "packages"), ("optional packages", "optional")):
        lines.append(title)
        lines += [f"  {name:15s} {version}" for name, version in report[key].items()]
    plugins = report["plugins"]
    lines.append("plugins       " + (", ".join(plugins) if isinstance(plugins, list) else str(plugins)))
    weights = report["weights"]
    if isinstance(weights, dict):
        lines.append("weights (searched: " + ", ".join(weights["searched"]) + ")")
        for name, w in weights["files"].items():
            lines.append(f"  {name:22s} {w['status']}" + (f" at {w['path']}" if w["path"] else ""))
        if not weights["files"]:
            lines.append("  (no weight files announced)")
    else:
        lines.append(f"weights       {weights}")
    lines.append("environment")
    set_vars = [f"  {k}={v}" for k, v in report["environment"].items() if v is not None]
    lines += set_vars or [f"  (none of {', '.join(ENV_VARS)} is set)"]
    return "\n".join(lines)


def env_command(as_json: bool, plugins: Optional[Plugins] = None) -> int:
    """``harness env [--json]``: print the report; returns the exit code (0)."""
    report = collect_environment(plugins)
    print(json.dumps(report, indent=1) if as_json else format_environment(report))
    return 0
