"""Installing beside an existing torch (issue 20): pyproject.toml declares ranges with their reasons, CI's exact
versions live in .ci/constraints.txt (applied by tox), and `harness env` reports what a bug report needs."""
from __future__ import annotations

import configparser
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import harness
from harness.runs import environment
from harness.cli import main
from harness.util.errors import HarnessError
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import WeightFile

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
# what a bug report needs (issue 20)
REPORT_KEYS = {"harness", "python", "torch", "torchvision", "cuda", "cudnn", "devices", "bf16", "packages",
               "optional", "plugins", "weights"}


def _dependencies() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in reqs]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # one exact pin per line
        assert spec.operator == "==", f"{line}: a constraint must pin one exact version"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _lower_bound(req: Requirement) -> Version:
    bounds = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{req}: needs exactly one >= lower bound"
    return bounds[0]


# --------------------------------------------------------------------------------------------------------------
# pyproject.toml and the constraints file
# --------------------------------------------------------------------------------------------------------------
def test_pyproject_declares_ranges_not_pins():
    reqs = {canonicalize_name(r.name): r for r in _dependencies()}
    for name in ("torch", "torchvision"):
        assert not [s for s in reqs[name].specifier if s.operator in ("==", "===", "~=")], str(reqs[name])
    for req in reqs.values():
        _lower_bound(req)
    # torchvision 0.N is the release built for torch 2.(N-15): 0.19 ↔ 2.4, 0.29 ↔ 2.14
    torch_lo, tv_lo = _lower_bound(reqs["torch"]), _lower_bound(reqs["torchvision"])
    assert (torch_lo.major, tv_lo.major, tv_lo.minor - torch_lo.minor) == (2, 0, 15)


def test_every_dependency_line_gives_its_reason():
    text = PYPROJECT.read_text()
    block = text[text.index("dependencies = ["):text.index("]", text.index("dependencies = ["))].splitlines()[1:]
    for i, line in enumerate(block):
        if line.strip().startswith('"'):
            assert "#" in line or block[i - 1].strip().startswith("#"), f"no reason given for {line.strip()}"


def test_constraints_pin_every_dependency_within_its_range():
    pins = _pins()
    for req in _dependencies():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in {CONSTRAINTS.name}"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside pyproject's {req}"
    assert (pins["torch"], pins["torchvision"]) == (Version("2.14.1"), Version("0.29.1"))  # CI's versions today
    assert pins["torchvision"].minor - pins["torch"].minor == 15


def test_tox_installs_under_the_constraints():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    set_env = dict(line.split("=", 1) for line in tox["testenv"]["set_env"].strip().splitlines())
    value = {k.strip(): v.strip() for k, v in set_env.items()}["PIP_CONSTRAINT"]
    assert Path(value.replace("{toxinidir}", str(ROOT))) == CONSTRAINTS


@pytest.mark.skipif("TOX_ENV_NAME" not in os.environ, reason="checks tox's environment (the versions CI installs)")
def test_ci_runs_exactly_the_pinned_versions():
    assert Path(os.environ["PIP_CONSTRAINT"]).resolve() == CONSTRAINTS  # what tox's pip installs were given
    wrong = {}
    for name, pinned in _pins().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue  # a pin for a platform-specific package that this machine does not install
        if Version(installed.public) != pinned:  # torch reports 2.14.1+cu130 for the pin 2.14.1
            wrong[name] = f"{installed} (pinned {pinned})"
    assert not wrong, wrong


# --------------------------------------------------------------------------------------------------------------
# harness env
# --------------------------------------------------------------------------------------------------------------
CONTENT = b"pretend these are weights"


class _WeightPlugin:
    @hookimpl
    def harness_weight_files(self):
        return [WeightFile("here", "test: present", ["here.pth"], "sha256", hashlib.sha256(CONTENT).hexdigest()),
                WeightFile("gone", "test: missing", ["gone.pth"], "none")]


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    d = tmp_path / "w"
    d.mkdir()
    (d / "here.pth").write_bytes(CONTENT)
    monkeypatch.setenv("HARNESS_WEIGHTS", "")  # empty: not searched; restored after the test
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return d


def test_env_json_has_the_report_keys_and_the_weight_files(weights_dir, capsys):
    plugins = build_plugins([_WeightPlugin()], entry_points=False)
    assert main(["env", "--json", "--weights-dir", str(weights_dir)], plugins=plugins) == 0
    report = json.loads(capsys.readouterr().out)
    assert REPORT_KEYS <= set(report)
    import torchvision

    assert (report["harness"], report["torch"], report["torchvision"]) == (harness.__version__, torch.__version__,
                                                                           torchvision.__version__)
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert set(report["optional"]) >= {"torch-fidelity", "openai-clip", "matplotlib", "jinja2"}
    assert report["cuda_available"] == torch.cuda.is_available()
    assert report["cuda"] == (torch.version.cuda or "none (CPU build)")
    cpu = [d for d in report["devices"] if d["type"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["threads"] == torch.get_num_threads()
    assert len(report["devices"]) == 1 + (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if not torch.cuda.is_available():
        assert report["bf16"] is False
    files = report["weights"]["files"]
    assert files["here"] == {"status": "present", "path": str(weights_dir / "here.pth"), "filenames": ["here.pth"]}
    assert files["gone"]["status"] == "missing" and files["gone"]["path"] is None
    assert report["weights"]["searched"][0] == str(weights_dir)


def test_a_missing_optional_package_reads_not_installed(weights_dir, monkeypatch, capsys):
    absent = "t2i-harness-no-such-package"
    monkeypatch.setattr(environment, "OPTIONAL_PACKAGES", environment.OPTIONAL_PACKAGES + (absent,))
    plugins = build_plugins([_WeightPlugin()], entry_points=False)
    assert main(["env", "--json", "--weights-dir", str(weights_dir)], plugins=plugins) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optional"][absent] == "not installed"
    assert report["optional"]["jinja2"] == environment.package_version("Jinja2")
    assert main(["env", "--weights-dir", str(weights_dir)], plugins=plugins) == 0
    text = capsys.readouterr().out
    assert [l.split() for l in text.splitlines() if absent in l] == [[absent, "not", "installed"]]
    assert [l.split() for l in text.splitlines() if l.strip().startswith("here ")] == [
        ["here", "present", "at", str(weights_dir / "here.pth")]]


def test_env_reports_plugins_that_fail_to_load(weights_dir, monkeypatch, capsys):
    import harness.contract.plugins

    def broken(*args, **kwargs):
        raise HarnessError("plugin 'mymethod' failed to import: No module named 'mymethod'")

    monkeypatch.setattr(harness.contract.plugins, "build_plugins", broken)
    assert main(["env", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plugins"].startswith("error: HarnessError: plugin 'mymethod' failed")
    assert "mymethod" in report["weights"] and report["torch"] == torch.__version__


def test_env_runs_as_a_program(tmp_path):
    """`python -m harness env --json` in a fresh process (the installed package under tox), outside the tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_WEIGHTS", "TORCH_HOME")}
    out = subprocess.run([sys.executable, "-m", "harness", "env", "--json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**env, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert REPORT_KEYS <= set(report) and {"attngan", "dmgan", "ecagan", "caegan"} <= set(report["plugins"])
    assert all(w["status"] == "missing" for w in report["weights"]["files"].values())  # HOME holds no weights


def test_a_prefix_checked_file_is_not_called_present(weights_dir, capsys):
    """A file whose only published check is the sha256 prefix in its name reads "prefix-checked only"."""
    name = f"net-{hashlib.sha256(CONTENT).hexdigest()[:8]}.pth"
    (weights_dir / name).write_bytes(CONTENT)

    class P:
        @hookimpl
        def harness_weight_files(self):
            return [WeightFile("hub", "test: hub-style name", [name], "sha256-prefix")]

    plugins = build_plugins([P()], entry_points=False)
    assert main(["env", "--json", "--weights-dir", str(weights_dir)], plugins=plugins) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["files"]["hub"]["status"] == "prefix-checked only"
    assert main(["weights", "--weights-dir", str(weights_dir)], plugins=plugins) == 0
    assert f"hub: prefix-checked only at {weights_dir / name}" in capsys.readouterr().out


def test_a_run_and_its_records_name_the_same_versions():
    """run.json's environment and every record's protocol read the versions in one place
    (``harness.util.version.library_versions``): the imported modules' own, torch's with its build tag, which the
    installed distribution's metadata drops (`harness env`: test_env_json_has_the_report_keys_and_the_weight_files)."""
    import numpy
    import torchvision

    from harness.config import new_config
    from harness.evaluation.evaluate import protocol_fields
    from harness.runs.info import run_environment

    expected = {"harness": harness.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "numpy": numpy.__version__}
    recorded = protocol_fields(new_config(), None, split="test", method_config={})["versions"]
    assert {k: recorded[k] for k in expected} == expected
    environment = run_environment("cpu")
    assert {k: environment[k] for k in recorded} == recorded
