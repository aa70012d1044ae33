"""benchmarks/reference_parity.py on tiny stand-in checkouts (written by tests/test_reference_speed.py, then given a
model.py and miscc/losses.py with the original interfaces): the original layouts are saved, imported through
``harness import-checkpoint`` (spectral norm through the key map), every tensor is compared, and a stand-in that
masks word attention per sample (not as the original) makes it fail, naming the attention maps.

The stand-in networks are this harness's modules behind the original's class names and call signatures (the
original code itself is not shipped); DM-GAN's spectral norm is the original's layout and algorithm
(``<layer>.module.weight_{u,v,bar}``, reference_speed's stand-in ``spectral`` module). The losses are written
out in the original's dialect (``.data[0]``, BCE on probabilities)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reference_checkouts import CONFIG as SPEED_CONFIG, write_checkouts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reference_parity.py"

CONFIG = '''
from easydict import EasyDict as edict
__C = edict()
cfg = __C
__C.CUDA = True
__C.STANDIN_MASK = 'reference'
__C.TREE = edict()
__C.TREE.BRANCH_NUM = 3
__C.TEXT = edict()
__C.TEXT.WORDS_NUM = 18
__C.TEXT.EMBEDDING_DIM = 16
__C.GAN = edict()
__C.GAN.Z_DIM = 8
__C.GAN.CONDITION_DIM = 8
__C.GAN.GF_DIM = 4
__C.GAN.DF_DIM = 2
__C.GAN.R_NUM = 1
__C.TRAIN = edict()
__C.TRAIN.SMOOTH = edict()
__C.TRAIN.SMOOTH.GAMMA1 = 4.0
__C.TRAIN.SMOOTH.GAMMA2 = 5.0
__C.TRAIN.SMOOTH.GAMMA3 = 10.0
__C.TRAIN.SMOOTH.LAMBDA = 5.0
''' + SPEED_CONFIG[SPEED_CONFIG.index("def _merge_a_into_b"):]  # iteritems, has_key, yaml.load

MODEL = '''
import torch
import torch.nn as nn
from miscc.config import cfg
from harness.nn.damsm import RNNTextEncoder, SmallCNNImageEncoder
from harness.nn.discriminators import DiscriminatorHead, StageDiscriminator
from harness.nn.word_attention import set_attention_mask
from harness.contract.types import TextFeatures
from plugins.{plugin}.model import {generator} as _G
{spectral_import}


class RNN_ENCODER(RNNTextEncoder):
    def __init__(self, ntoken, ninput=300, drop_prob=0.5, nhidden=128):
        RNNTextEncoder.__init__(self, ntoken, ninput, nhidden, drop_prob)

    def init_hidden(self, bsz):
        return None

    def forward(self, captions, cap_lens, hidden, mask=None):
        t = RNNTextEncoder.forward(self, captions, cap_lens)
        return t.words, t.sent


class CNN_ENCODER(SmallCNNImageEncoder):
    def __init__(self, nef):
        SmallCNNImageEncoder.__init__(self, nef, 256)


class G_NET(_G):
    def __init__(self):
        _G.__init__(self, gf_dim=cfg.GAN.GF_DIM, embedding_dim=cfg.TEXT.EMBEDDING_DIM, z_dim=cfg.GAN.Z_DIM,
                    condition_dim=cfg.GAN.CONDITION_DIM, r_num=cfg.GAN.R_NUM, branch_num=cfg.TREE.BRANCH_NUM,
                    base_size=64)
        set_attention_mask(self, cfg.STANDIN_MASK)

    def forward(self, z_code, sent_emb, word_embs, mask{cap_lens}):
        out = _G.forward(self, z_code, TextFeatures(word_embs, sent_emb, mask, None))
        return out.images, out.attn, out.mu, out.logvar


class _ProbabilityHead(DiscriminatorHead):
    def forward(self, h_code, c_code=None):
        return torch.sigmoid(DiscriminatorHead.forward(self, h_code, c_code))


def _original_spectral_norm(module):
    for name, child in list(module.named_children()):
        if hasattr(child, 'parametrizations'):
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                             child.padding, bias=True)
            setattr(module, name, SpectralNorm(conv))
        else:
            _original_spectral_norm(child)


def _d_net(size):
    d = StageDiscriminator(cfg.GAN.DF_DIM, cfg.TEXT.EMBEDDING_DIM, size, spectral={spectral})
    if {spectral}:
        _original_spectral_norm(d)
    d.COND_DNET.__class__ = _ProbabilityHead
    d.UNCOND_DNET.__class__ = _ProbabilityHead
    return d


def D_NET64():
    return _d_net(64)


def D_NET128():
    return _d_net(128)


def D_NET256():
    return _d_net(256)
'''

LOSSES = '''
import numpy as np
import torch
import torch.nn as nn
from miscc.config import cfg
from harness.nn import damsm_loss


def sent_loss(cnn_code, rnn_code, labels, class_ids, batch_size, eps=1e-8):
    return damsm_loss.sent_loss(cnn_code, rnn_code, torch.from_numpy(class_ids), cfg.TRAIN.SMOOTH.GAMMA3)


def words_loss(img_features, words_emb, labels, cap_lens, class_ids, batch_size):
    s = cfg.TRAIN.SMOOTH
    return damsm_loss.words_loss(img_features, words_emb, cap_lens, torch.from_numpy(class_ids), s.GAMMA1,
                                 s.GAMMA2, s.GAMMA3)


def discriminator_loss(netD, real_imgs, fake_imgs, conditions, real_labels, fake_labels):
    real_features = netD(real_imgs)
    fake_features = netD(fake_imgs.detach())
    cond_real_errD = nn.BCELoss()(netD.COND_DNET(real_features, conditions), real_labels)
    cond_fake_errD = nn.BCELoss()(netD.COND_DNET(fake_features, conditions), fake_labels)
    batch_size = real_features.size(0)
    cond_wrong_errD = nn.BCELoss()(netD.COND_DNET(real_features[:(batch_size - 1)], conditions[1:batch_size]),
                                   fake_labels[1:batch_size])
    real_errD = nn.BCELoss()(netD.UNCOND_DNET(real_features), real_labels)
    fake_errD = nn.BCELoss()(netD.UNCOND_DNET(fake_features), fake_labels)
    errD = (real_errD + cond_real_errD) / 2. + (fake_errD + cond_fake_errD + cond_wrong_errD) / 3.
    return errD{d_extra}


def generator_loss(netsD, image_encoder, fake_imgs, real_labels, words_embs, sent_emb, match_labels, cap_lens,
                   class_ids):
    logs = ''
    errG_total = 0
    for i in range(len(netsD)):
        features = netsD[i](fake_imgs[i])
        g_loss = nn.BCELoss()(netsD[i].COND_DNET(features, sent_emb), real_labels) + \\
            nn.BCELoss()(netsD[i].UNCOND_DNET(features), real_labels)
        errG_total += g_loss
        logs += 'g_loss%d: %.2f ' % (i, g_loss.data[0])
        if i == len(netsD) - 1:
            region_features, cnn_code = image_encoder(fake_imgs[i])
            w_loss0, w_loss1, _ = words_loss(region_features, words_embs, match_labels, cap_lens, class_ids,
                                             real_labels.size(0))
            s_loss0, s_loss1 = sent_loss(cnn_code, sent_emb, match_labels, class_ids, real_labels.size(0))
            errG_total += (w_loss0 + w_loss1 + s_loss0 + s_loss1) * cfg.TRAIN.SMOOTH.LAMBDA
    return errG_total, logs


def KL_loss(mu, logvar):
    return torch.mean(mu.pow(2).add_(logvar.exp()).mul_(-1).add_(1).add_(logvar)).mul_(-0.5)
'''


def write_parity_checkouts(root: Path, mask: str = "reference") -> Path:
    """test_reference_speed's stand-in checkouts, with networks and losses of the original's interfaces."""
    write_checkouts(root)
    for repo, plugin, generator in (("AttnGAN", "attngan", "AttnGANGenerator"), ("DM-GAN", "dmgan", "DMGANGenerator")):
        code = root / repo / "code"
        dm = repo == "DM-GAN"
        (code / "miscc" / "config.py").write_text(CONFIG.replace("'reference'", repr(mask)))
        (code / "model.py").write_text(textwrap.dedent(MODEL).format(
            plugin=plugin, generator=generator, spectral_import="from spectral import SpectralNorm" if dm else "",
            cap_lens=", cap_lens" if dm else "", spectral=dm))
        (code / "miscc" / "losses.py").write_text(LOSSES.format(d_extra=", ''" if dm else ""))
    return root


def run_parity(root: Path, method: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--ref-root", str(root), "--method", method, "--threads", "1",
                           "--preset", "test", "--dataset", "shapes",
                           "--set", "pretrain.damsm.image_encoder=small_cnn"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("method", ["attngan", "dmgan"])
def test_every_tensor_is_compared_and_within_tolerance(tmp_path, method):
    proc = run_parity(write_parity_checkouts(tmp_path / "ref"), method)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = proc.stdout
    assert "OK: every compared tensor within 1e-05" in out
    assert "model.attention_mask=reference" in out  # import-checkpoint's stderr line, printed
    assert f"eval.batch_size={10 if method == 'dmgan' else 100}" in out
    assert "caption lengths [18, 15, 12, 10, 7, 4]" in out and "data\\[0\\]" in out  # the compatibility fixes ran
    for mode in ("eval", "train"):
        for name in ("text: words", "image: code", "G: image 256", "G: attention map 2 (128²)", "D2: conditional",
                     "D0: loss", "G loss: adversarial 256", "G loss: DAMSM words", "G loss: KL", "G loss: total"):
            assert f"| {mode} | {name}" in out, name
        assert (f"| {mode} | D2: spectral-norm u, v" in out) is (method == "dmgan")


def test_a_per_sample_mask_in_the_original_fails_on_the_attention_maps(tmp_path):
    proc = run_parity(write_parity_checkouts(tmp_path / "ref", mask="per_sample"), "attngan")
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    fail = [line for line in proc.stdout.splitlines() if line.startswith("FAIL:")]
    assert fail and "G: attention map 1" in fail[0] and "G: image 256" in fail[0]
    assert "G: mu" not in fail[0] and "D0: loss" not in fail[0]  # the first stage and the Ds still agree
