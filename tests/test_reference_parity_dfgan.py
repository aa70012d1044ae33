"""benchmarks/reference_parity.py --method dfgan (and reference_speed's DF-GAN timing) on a tiny stand-in checkout
written here in the original's layout (``DF-GAN/code/models/GAN.py``, ``DF-GAN/code/lib/modules.py``,
``models/DAMSM.py``): the original's state_epoch file is saved and imported through ``harness import-checkpoint
dfgan``, every tensor and loss term is compared, and a stand-in whose gradient penalty takes another power makes
it fail on the penalty and the D step's gradients only.

The stand-in networks are this plugin's modules behind the original's class names, signatures and output shapes
(the original code is not shipped); the three loss functions are written in the original's dialect (``.cuda()``,
``negtive``) in a module whose other imports would fail, as the real one's need its data pipeline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reference_parity.py"

GAN = '''
import torch.nn as nn
from plugins.dfgan import model as _m


class NetG(_m.NetG):
    def __init__(self, ngf, nz, cond_dim, imsize, ch_size):
        _m.NetG.__init__(self, ngf, nz, cond_dim, imsize)


class NetD(_m.NetD):
    def __init__(self, ndf, imsize=128, ch_size=3):
        _m.NetD.__init__(self, ndf, imsize)


class NetC(_m.NetC):
    def __init__(self, ndf, cond_dim=256):
        _m.NetC.__init__(self, ndf, ndf * 8, cond_dim)

    def forward(self, out, y):
        return _m.NetC.forward(self, out, y).view(-1, 1, 1, 1)
'''

MODULES = '''
import torch
from lib.datasets import prepare_data  # the real module's data pipeline: never imported by the script


def MA_GP(img, sent, out):
    grads = torch.autograd.grad(outputs=out, inputs=(img, sent), grad_outputs=torch.ones(out.size()).cuda(),
                                retain_graph=True, create_graph=True, only_inputs=True)
    flat = torch.cat((grads[0].view(grads[0].size(0), -1), grads[1].view(grads[1].size(0), -1)), dim=1)
    return 2.0 * torch.mean(torch.sqrt(torch.sum(flat ** 2, dim=1)) ** {power})


def predict_loss(predictor, img_feature, text_feature, negtive):
    output = predictor(img_feature, text_feature)
    return output, hinge_loss(output, negtive)


def hinge_loss(output, negtive):
    if negtive == False:
        return torch.nn.ReLU()(1.0 - output).mean()
    return torch.nn.ReLU()(1.0 + output).mean()
'''


def write_checkout(root: Path, power: int = 6) -> Path:
    code = root / "DF-GAN" / "code"
    for package in ("models", "lib"):
        (code / package).mkdir(parents=True)
        (code / package / "__init__.py").write_text("")
    (code / "models" / "GAN.py").write_text(GAN)
    (code / "lib" / "modules.py").write_text(MODULES.replace("{power}", str(power)))
    return root


def run_parity(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--ref-root", str(root), "--method", "dfgan", "--threads", "1",
                           "--preset", "test", "--dataset", "shapes", "--image-size", "32", "--nf", "4",
                           "--batch", "3"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_every_dfgan_tensor_and_loss_term_is_compared_and_within_tolerance(tmp_path):
    proc = run_parity(write_checkout(tmp_path / "ref"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = proc.stdout
    assert "OK: every compared tensor within 1e-05" in out
    assert "lib/modules.py MA_GP: .cuda() removed (CPU)" in out
    assert "harness import-checkpoint: import-checkpoint:" in out
    for name in ("G: image", "NetD: features (real)", "NetD: features (fake)", "NetC: logits (real, its sentence)",
                 "NetC: logits (next real, sentence)", "NetC: logits (fake, sentence)", "D loss: d_real",
                 "D loss: d_fake", "D loss: d_mismatch", "D loss: d_magp", "D loss: total",
                 "D step: netD parameter gradients", "D step: netC parameter gradients", "G loss: g_adv"):
        assert f"| train | {name}" in out, name


def test_another_penalty_power_in_the_original_fails_on_the_penalty_and_its_gradients(tmp_path):
    proc = run_parity(write_checkout(tmp_path / "ref", power=2))
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    fail = [line for line in proc.stdout.splitlines() if line.startswith("FAIL:")]
    assert fail and "D loss: d_magp" in fail[0] and "D step: netC parameter gradients" in fail[0]
    for agreeing in ("G: image", "NetC:", "d_real", "d_fake", "d_mismatch", "g_adv"):
        assert agreeing not in fail[0], agreeing


DAMSM = '''
import torch.nn as nn


class RNN_ENCODER(nn.Module):
    def __init__(self, ntoken, ninput=300, drop_prob=0.5, nhidden=128, nlayers=1, bidirectional=True):
        super(RNN_ENCODER, self).__init__()
        self.encoder = nn.Embedding(ntoken, nhidden)

    def init_hidden(self, bsz):
        return None

    def forward(self, captions, cap_lens, hidden, mask=None):
        words = self.encoder(captions).transpose(1, 2)
        return words, words.mean(2)
'''


def test_reference_speed_times_the_originals_iteration_phase_by_phase(tmp_path):
    """reference_speed_dfgan on the stand-in checkout (small sizes), the original's DAMSM text encoder included:
    every phase and G forward timed in reference_speed's result layout, the .cuda() fix reported."""
    root = write_checkout(tmp_path / "ref")
    (root / "DF-GAN" / "code" / "models" / "DAMSM.py").write_text(DAMSM)
    script = f'''
import json, sys
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import reference_speed_dfgan as r
res = r.measure_dfgan(__import__("pathlib").Path({str(root)!r}), batch=2, threads=1, warmup=1, reps=2, nf=4,
                      image_size=32)
print(json.dumps(res))
'''
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["repo"] == "DF-GAN" and res["batch"] == 2 and len(res["iterations_s"]) == 2
    med = res["median_s"]
    assert set(med) == {"text", "g_forward", "d_steps", "g_step", "total"} and all(v > 0 for v in med.values())
    assert res["compatibility"] == ["lib/modules.py MA_GP: .cuda() removed (CPU)"]
    assert res["g_forward_eval_s"] > 0
