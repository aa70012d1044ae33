"""Tiny stand-ins for the original AttnGAN and DM-GAN checkouts, in their layout and their Python 2 /
PyTorch 0.x dialect, for the tests of benchmarks/reference_speed.py and benchmarks/reference_parity.py."""
from __future__ import annotations

import textwrap
from pathlib import Path

CONFIG = '''
from easydict import EasyDict as edict
__C = edict()
cfg = __C
__C.CUDA = True
__C.RNN_TYPE = 'LSTM'
__C.TEXT = edict()
__C.TEXT.WORDS_NUM = 18
__C.TEXT.EMBEDDING_DIM = 256
__C.GAN = edict()
__C.GAN.Z_DIM = 100
__C.TRAIN = edict()
__C.TRAIN.DISCRIMINATOR_LR = 2e-4
__C.TRAIN.GENERATOR_LR = 2e-4

def _merge_a_into_b(a, b):
    for k, v in a.iteritems():
        if not b.has_key(k):
            raise KeyError('{} is not a valid config key'.format(k))
        if type(v) is edict:
            _merge_a_into_b(a[k], b[k])
        else:
            b[k] = v

def cfg_from_file(filename):
    import yaml
    with open(filename, 'r') as f:
        yaml_cfg = edict(yaml.load(f))
    _merge_a_into_b(yaml_cfg, __C)
'''

YAML = "GAN:\n    Z_DIM: 16\nTEXT:\n    EMBEDDING_DIM: 8\n"

MODEL = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.model_zoo as model_zoo
from miscc.config import cfg
{spectral_import}

class RNN_ENCODER(nn.Module):
    def __init__(self, ntoken, nhidden=256):
        super(RNN_ENCODER, self).__init__()
        self.emb = nn.Embedding(ntoken, nhidden)
    def init_hidden(self, bsz):
        return None
    def forward(self, captions, cap_lens, hidden):
        w = self.emb(captions).transpose(1, 2)
        return w, w.mean(2)

class CNN_ENCODER(nn.Module):
    def __init__(self, nef):
        super(CNN_ENCODER, self).__init__()
        state_dict = {inception_load}
        self.inception_tensors = len(state_dict)
        self.conv = nn.Conv2d(3, nef, 4, 4)
    def forward(self, x):
        f = self.conv(F.adaptive_avg_pool2d(x, 16))
        return f, f.mean(3).mean(2)

class G_NET(nn.Module):
    def __init__(self):
        super(G_NET, self).__init__()
        self.fc = nn.Linear(cfg.GAN.Z_DIM + cfg.TEXT.EMBEDDING_DIM, 3 * 8 * 8 + 2 * cfg.TEXT.EMBEDDING_DIM)
    def forward(self, z, sent, words, mask{cap_lens}):
        h = self.fc(torch.cat([sent, z], 1))
        d = cfg.TEXT.EMBEDDING_DIM
        x = torch.tanh(h[:, :192]).view(-1, 3, 8, 8)
        imgs = [F.interpolate(x, size=s) for s in (64, 128, 256)]
        return imgs, None, h[:, 192:192 + d], h[:, 192 + d:]

class _D(nn.Module):
    def __init__(self):
        super(_D, self).__init__()
        self.conv = {d_conv}
        self.cond = nn.Linear(4 + cfg.TEXT.EMBEDDING_DIM, 1)
        self.uncond = nn.Linear(4, 1)
    def forward(self, x):
        return self.conv(F.adaptive_avg_pool2d(x, 8)).mean(3).mean(2)
    def COND_DNET(self, h, c):
        return torch.sigmoid(self.cond(torch.cat([h, c], 1))).view(-1)
    def UNCOND_DNET(self, h):
        return torch.sigmoid(self.uncond(h)).view(-1)

D_NET64 = D_NET128 = D_NET256 = _D
'''

LOSSES = '''
import numpy as np
import torch
import torch.nn as nn
from miscc.config import cfg

def discriminator_loss(netD, real_imgs, fake_imgs, conditions, real_labels, fake_labels):
    real = netD(real_imgs)
    fake = netD(fake_imgs.detach())
    err = nn.BCELoss()(netD.COND_DNET(real, conditions), real_labels) + \\
        nn.BCELoss()(netD.COND_DNET(fake, conditions), fake_labels) + \\
        nn.BCELoss()(netD.UNCOND_DNET(fake), fake_labels)
    return err{d_extra}

def generator_loss(netsD, image_encoder, fake_imgs, real_labels, words_embs, sent_emb, match_labels, cap_lens,
                   class_ids):
    logs = ''
    total = 0
    for i in range(len(netsD)):
        g_loss = nn.BCELoss()(netsD[i].COND_DNET(netsD[i](fake_imgs[i]), sent_emb), real_labels)
        total = total + g_loss
        logs += 'g_loss%d: %.2f ' % (i, g_loss.data[0])
    region, code = image_encoder(fake_imgs[-1])
    masks = torch.ByteTensor(np.eye(len(class_ids), dtype=np.uint8))
    scores = code.mm(sent_emb.t())
    scores.data.masked_fill_(masks, -float('inf'))
    total = total + region.pow(2).mean() + scores.max(1)[0].mean() * 0.0
    return total, logs

def KL_loss(mu, logvar):
    return torch.mean(-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()))
'''

UTILS = '''
import torch.nn as nn
from copy import deepcopy
import skimage.transform

def weights_init(m):
    if m.__class__.__name__.find('Conv') != -1:
        if m.state_dict().keys()[0] == 'weight':
            nn.init.orthogonal_(m.weight.data, 1.0)
        elif m.state_dict().keys()[3] == 'weight_bar':
            nn.init.orthogonal_(m.weight_bar.data, 1.0)

def copy_G_params(model):
    return deepcopy(list(p.data for p in model.parameters()))
'''


def write_checkouts(root: Path) -> Path:
    """AttnGAN/code (its own config.py, a local Inception file) and DM-GAN/code (no config.py, no spectral.py,
    SpectralNorm discriminators, G takes cap_lens) in the reference's layout."""
    for repo, yml in (("AttnGAN", "bird_attn2.yml"), ("DM-GAN", "bird_DMGAN.yml")):
        code = root / repo / "code"
        (code / "miscc").mkdir(parents=True)
        (code / "cfg").mkdir()
        (code / "cfg" / yml).write_text(YAML)
        (code / "miscc" / "__init__.py").write_text("")
        dm = repo == "DM-GAN"
        (code / "model.py").write_text(textwrap.dedent(MODEL).format(
            spectral_import="from spectral import SpectralNorm" if dm else "",
            inception_load=("model_zoo.load_url('https://download.pytorch.org/models/x.pth')" if dm
                            else "torch.load('inception_v3_google-1a9a5a14.pth')"),
            cap_lens=", cap_lens" if dm else "",
            d_conv="SpectralNorm(nn.Conv2d(3, 4, 3, 1, 1, bias=True))" if dm else "nn.Conv2d(3, 4, 3, 1, 1)"))
        (code / "miscc" / "losses.py").write_text(LOSSES.format(d_extra=", ''" if dm else ""))
        (code / "miscc" / "utils.py").write_text(UTILS)
        if not dm:
            (code / "miscc" / "config.py").write_text(CONFIG)
    return root
