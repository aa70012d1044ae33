"""benchmarks/reference_speed.py times a reference checkout written for Python 2 / PyTorch 0.x: its compatibility
fixes apply to the source text, missing modules are provided, and train_speed.py compares with it.

The checkouts here are tiny stand-ins written in the reference's layout and in its dialect (``iteritems``,
``has_key``, ``x.data[0]``, ``torch.ByteTensor`` masks, ``state_dict().keys()[0]``, a local Inception file):
unfixed, each of them fails on today's Python and PyTorch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference_checkouts import write_checkouts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reference_speed.py"

def run_reference(root: Path, repo: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--ref-root", str(root), "--repo", repo, "--batch", "2",
                           "--threads", "1", "--warmup", "0", "--reps", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("repo", ["AttnGAN", "DM-GAN"])
def test_a_python2_era_checkout_is_timed_with_its_fixes(tmp_path, repo):
    root = write_checkouts(tmp_path / "ref")
    proc = run_reference(root, repo, tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["repo"] == repo and res["batch"] == 2 and len(res["iterations_s"]) == 2
    assert set(res["median_s"]) == {"text", "g_forward", "d_steps", "g_step", "total"}
    m = res["median_s"]
    assert m["total"] >= m["g_forward"] + m["d_steps"] + m["g_step"] > 0
    fixes = "\n".join(res["compatibility"])
    assert "iteritems" in fixes and "has_key" in fixes and "yaml" in fixes  # config
    assert "data\\[0\\]" in fixes and "ByteTensor" in fixes  # losses
    assert "random Inception-v3" in fixes
    if repo == "DM-GAN":
        assert "spectral: not in the checkout" in fixes and "miscc.config: not in the checkout" in fixes
        assert "keys" in fixes  # utils.weights_init's keys()[i], on the SpectralNorm-wrapped convs
    else:
        assert "inception_v3_google" in fixes


def test_a_missing_checkout_names_the_layout(tmp_path):
    proc = run_reference(tmp_path, "AttnGAN", tmp_path / "out.json")
    assert proc.returncode != 0
    assert "AttnGAN/code/model.py" in proc.stderr and "taoxugit/AttnGAN" in proc.stderr


def test_spectral_norm_stand_in_divides_by_the_largest_singular_value():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3)
    sn = mod.spectral_norm_module().SpectralNorm(conv)
    assert [k for k in conv.state_dict()] == ["bias", "weight_u", "weight_v", "weight_bar"]  # released key order
    w = conv.weight_bar.detach().reshape(5, -1)
    for _ in range(50):  # power iteration converges
        sn(torch.randn(1, 3, 8, 8))
    sigma = torch.linalg.matrix_norm(w, ord=2)
    torch.testing.assert_close(conv.weight.detach().reshape(5, -1), w / sigma, rtol=1e-4, atol=1e-6)


def test_train_speed_compares_with_the_reference_timed_here(tmp_path, capsys):
    import importlib.util
    root = write_checkouts(tmp_path / "ref")
    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks" / "train_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        assert mod.main(["--preset", "test", "--batch", "2", "--warmup", "0", "--reps", "1", "--threads", "1",
                         "--vocab-size", "50", "--modes", "optimised", "--ref-root", str(root),
                         "--json", str(tmp_path / "speed.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "optimised iteration / AttnGAN here iteration:" in out
    res = json.loads((tmp_path / "speed.json").read_text())
    assert res["reference_same_machine"]["repo"] == "AttnGAN" and res["reference_repo"] == "AttnGAN"
