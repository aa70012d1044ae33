"""Time the original AttnGAN / DM-GAN code on this machine, with REFERENCE.md A6's protocol, so that this project's
training iteration can be compared with the reference implementation measured in the same session.

    python benchmarks/reference_speed.py --ref-root DIR --repo AttnGAN|DM-GAN|DF-GAN [--batch 8] [--threads 2]
                                         [--warmup 2] [--reps 3] [--json FILE]

``--repo DF-GAN`` times ``DIR/DF-GAN/code`` (tobran/DF-GAN, Python 3, run as it is but for ``.cuda()``) with
``reference_speed_dfgan.py`` (its docstring says how); the rest of this text is about AttnGAN and DM-GAN.

``DIR`` holds checkouts of the two public repositories, ``DIR/AttnGAN/code`` (taoxugit/AttnGAN) and
``DIR/DM-GAN/code`` (MinfengZhu/DM-GAN); this project ships none of their code. ``train_speed.py --ref-root DIR``
runs this script in a subprocess and prints optimised / reference.

The reference code was written for Python 2.7 and PyTorch 0.3/0.4. It is imported unchanged on disk; a few
compatibility fixes are applied to its source text in memory as it is imported (each one only changes
Python-2-only or PyTorch-0.x-only syntax, never what is computed):

* ``miscc/config.py``: ``d.iteritems()`` → ``d.items()``, ``d.has_key(k)`` → ``k in d``, ``yaml.load`` →
  ``yaml.safe_load``;
* ``miscc/losses.py``: ``x.data[0]`` (indexing a 0-dim tensor) → ``x.item()``; ``torch.ByteTensor(masks)`` →
  ``torch.BoolTensor(masks)`` (``masked_fill_`` takes boolean masks only);
* ``miscc/utils.py``: ``m.state_dict().keys()[i]`` → ``list(m.state_dict().keys())[i]``;
* ``model.py``: the ImageNet Inception-v3 of ``CNN_ENCODER`` gets a randomly initialised state dict instead of a
  download (``model_zoo.load_url``) or a local ``torch.load`` of ``inception_v3_google-1a9a5a14.pth``: speed only.

Modules a checkout may lack are provided when they are missing: ``skimage`` (only used by visualisation helpers),
``easydict`` (an attribute dictionary), DM-GAN's ``spectral.py`` (``SpectralNorm``: one power iteration per
forward, parameters ``<name>_u``, ``<name>_v``, ``<name>_bar`` as in the released state dicts) and DM-GAN's
``miscc/config.py`` (AttnGAN's is used; the keys DM-GAN reads are the same). What was provided is printed.

Protocol (REFERENCE.md A6): random-weight models, batch 8 of the CUB loader's shapes (images 64/128/256, T = 18,
vocabulary 5450, distinct classes), one iteration = text encode → G forward → 3 D steps → G loss (3 Ds +
CNN_ENCODER + words/sentence losses + KL) backward, Adam, EMA 0.999; ``--warmup`` iterations, then the median
of ``--reps``. Then G forward alone (eval, no_grad).
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import os
import platform
import re
import statistics
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phase_clock import time_reference_iterations  # noqa: E402

PHASES = ("text", "g_forward", "d_steps", "g_step")
REPOS = ("AttnGAN", "DM-GAN", "DF-GAN")  # DF-GAN: reference_speed_dfgan.py

# (module name, [(pattern, replacement)]): Python 2 / PyTorch 0.x syntax → today's, nothing else.
SOURCE_FIXES: dict[str, list[tuple[str, str]]] = {
    "miscc.config": [(r"\.iteritems\(\)", ".items()"),
                     (r"not\s+(\w+)\.has_key\((\w+)\)", r"\2 not in \1"),
                     (r"(\w+)\.has_key\((\w+)\)", r"\2 in \1"),
                     (r"yaml\.load\((\w+)\)", r"yaml.safe_load(\1)")],
    "miscc.losses": [(r"\.data\[0\]", ".item()"), (r"torch\.ByteTensor\(", "torch.BoolTensor(")],
    "miscc.utils": [(r"(\w+\.state_dict\(\)\.keys\(\))\[(\d+)\]", r"list(\1)[\2]")],
    "model": [(r"torch\.load\((['\"])inception_v3_google-1a9a5a14\.pth\1\)",
               "model_zoo.load_url('inception_v3_google-1a9a5a14.pth')")],
}


class _FixingLoader(importlib.abc.SourceLoader):
    """Loads one reference module from its file with ``SOURCE_FIXES`` applied to the text."""

    def __init__(self, name: str, path: str, fixes: list[tuple[str, str]], applied: list[str]):
        self.name, self.path, self.fixes, self.applied = name, path, fixes, applied

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        for pattern, repl in self.fixes:
            text, n = re.subn(pattern, repl, text)
            if n:
                self.applied.append(f"{self.name}: {pattern} → {repl} ({n}×)")
        return text.encode("utf-8")


class _FixingFinder(importlib.abc.MetaPathFinder):
    """Finds the reference's ``model`` and ``miscc.*`` modules under ``code_dir`` (or a fallback file)."""

    def __init__(self, code_dir: Path, fallbacks: dict[str, Path], applied: list[str]):
        self.code_dir, self.fallbacks, self.applied = code_dir, fallbacks, applied

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in SOURCE_FIXES:
            return None
        file = self.code_dir.joinpath(*fullname.split(".")).with_suffix(".py")
        if not file.exists():
            file = self.fallbacks.get(fullname)
            if file is None:
                return None
            self.applied.append(f"{fullname}: not in the checkout, using {file}")
        loader = _FixingLoader(fullname, str(file), SOURCE_FIXES[fullname], self.applied)
        return importlib.util.spec_from_file_location(fullname, str(file), loader=loader)


# ------------------------------------------------------------------------------------------------------
# Stand-ins for modules a checkout or this machine may lack
# ------------------------------------------------------------------------------------------------------
class AttrDict(dict):
    """``easydict.EasyDict``'s behaviour as the reference config uses it (attribute access, nested dicts)."""

    def __init__(self, d: Optional[dict] = None, **kw):
        super().__init__()
        for k, v in {**(d or {}), **kw}.items():
            self[k] = v

    def __setitem__(self, k, v):
        if isinstance(v, dict) and not isinstance(v, AttrDict):
            v = AttrDict(v)
        super().__setitem__(k, v)

    __setattr__ = __setitem__

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def spectral_norm_module():
    """A ``spectral`` module with ``SpectralNorm(module, name='weight', power_iterations=1)``: W / σ(W), σ from
    one power iteration per forward on persistent vectors u, v (not trained)."""
    import torch
    import torch.nn as nn

    def unit(x: torch.Tensor) -> torch.Tensor:
        return x / (x.norm() + 1e-12)

    class SpectralNorm(nn.Module):
        def __init__(self, module: nn.Module, name: str = "weight", power_iterations: int = 1):
            super().__init__()
            self.module, self.name, self.power_iterations = module, name, power_iterations
            w = getattr(module, name)
            rows = w.shape[0]
            u = nn.Parameter(unit(w.data.new_empty(rows).normal_()), requires_grad=False)
            v = nn.Parameter(unit(w.data.new_empty(w.data.reshape(rows, -1).shape[1]).normal_()),
                             requires_grad=False)
            bar = nn.Parameter(w.data)
            del module._parameters[name]
            module.register_parameter(name + "_u", u)
            module.register_parameter(name + "_v", v)
            module.register_parameter(name + "_bar", bar)

        def forward(self, *args):
            u = getattr(self.module, self.name + "_u")
            v = getattr(self.module, self.name + "_v")
            w = getattr(self.module, self.name + "_bar")
            mat = w.reshape(w.shape[0], -1)
            for _ in range(self.power_iterations):
                v.data = unit(mat.data.t() @ u.data)
                u.data = unit(mat.data @ v.data)
            sigma = u @ (mat @ v)  # σ(W) ≈ uᵀ W v
            setattr(self.module, self.name, w / sigma)
            return self.module(*args)

    mod = types.ModuleType("spectral")
    mod.SpectralNorm = SpectralNorm
    return mod


def install_environment(ref_root: Path, repo: str) -> list[str]:
    """Put the reference code on ``sys.path`` with its fixes and stand-ins; returns what was fixed/provided."""
    code = ref_root / repo / "code"
    if not (code / "model.py").exists():
        raise SystemExit(f"reference_speed: {code / 'model.py'} not found. --ref-root must hold checkouts laid out as "
                         f"<root>/AttnGAN/code/model.py (github taoxugit/AttnGAN) and <root>/DM-GAN/code/model.py "
                         f"(github MinfengZhu/DM-GAN)")
    applied: list[str] = []
    fallbacks = {"miscc.config": ref_root / "AttnGAN" / "code" / "miscc" / "config.py"}
    sys.meta_path.insert(0, _FixingFinder(code, fallbacks, applied))
    sys.path.insert(0, str(code))
    os.chdir(code)  # the reference opens cfg/... relative to code/
    for name in ("skimage", "skimage.transform"):
        sys.modules.setdefault(name, types.ModuleType(name))
    if importlib.util.find_spec("easydict") is None:
        mod = types.ModuleType("easydict")
        mod.EasyDict = AttrDict
        sys.modules["easydict"] = mod
        applied.append("easydict: not installed, using an attribute dict")
    if not (code / "spectral.py").exists() and repo == "DM-GAN":
        sys.modules["spectral"] = spectral_norm_module()
        applied.append("spectral: not in the checkout, using SpectralNorm (one power iteration)")
    if not (code / "miscc" / "__init__.py").exists():
        pkg = types.ModuleType("miscc")
        pkg.__path__ = [str(code / "miscc")]
        sys.modules["miscc"] = pkg

    import torch.utils.model_zoo as model_zoo
    import torchvision

    def random_inception_state(*_args, **_kwargs):
        return torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()

    model_zoo.load_url = random_inception_state  # random weights: speed only
    applied.append("CNN_ENCODER: random Inception-v3 weights (no download)")
    return applied


def measure(ref_root: Path, repo: str, batch: int, threads: int, warmup: int, reps: int) -> dict:
    """The A6 protocol on the reference code: per-phase medians of one training iteration and of G forward."""
    warnings.filterwarnings("ignore")
    applied = install_environment(ref_root, repo)
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from miscc.config import cfg, cfg_from_file

    cfg_from_file("cfg/bird_attn2.yml" if repo == "AttnGAN" else "cfg/bird_DMGAN.yml")
    cfg.CUDA = False
    import model as M
    from miscc.losses import KL_loss, discriminator_loss, generator_loss
    from miscc.utils import copy_G_params, weights_init

    torch.manual_seed(0)
    np.random.seed(0)
    vocab, words = 5450, cfg.TEXT.WORDS_NUM
    dm = repo == "DM-GAN"
    text_encoder = M.RNN_ENCODER(vocab, nhidden=cfg.TEXT.EMBEDDING_DIM)
    image_encoder = M.CNN_ENCODER(cfg.TEXT.EMBEDDING_DIM)
    for enc in (text_encoder, image_encoder):
        enc.requires_grad_(False)
        enc.eval()
    net_g = M.G_NET()
    net_g.apply(weights_init)
    nets_d = [M.D_NET64(), M.D_NET128(), M.D_NET256()]
    for d in nets_d:
        d.apply(weights_init)
    avg_g = copy_G_params(net_g)
    opt_d = [torch.optim.Adam([p for p in d.parameters() if p.requires_grad], lr=cfg.TRAIN.DISCRIMINATOR_LR,
                              betas=(0.5, 0.999)) for d in nets_d]
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.TRAIN.GENERATOR_LR, betas=(0.5, 0.999))

    images = [torch.rand(batch, 3, s, s) * 2 - 1 for s in (64, 128, 256)]
    lengths = np.sort(np.random.randint(6, words + 1, size=batch))[::-1].copy()
    lengths[0] = words
    cap_lens = torch.from_numpy(lengths).long()
    captions = torch.zeros(batch, words, dtype=torch.long)
    for i, n in enumerate(lengths):
        captions[i, :n] = torch.randint(1, vocab, (int(n),))
    class_ids = np.arange(batch) + 1
    real_labels, fake_labels, match_labels = torch.ones(batch), torch.zeros(batch), torch.arange(batch)
    noise = torch.empty(batch, cfg.GAN.Z_DIM)

    def generate(sent, words_embs, mask):
        args = (noise, sent, words_embs, mask) + ((cap_lens,) if dm else ())
        return net_g(*args)

    def iteration(mark: Callable[[str], None]) -> None:
        hidden = text_encoder.init_hidden(batch)
        words_embs, sent = text_encoder(captions, cap_lens, hidden)
        words_embs, sent = words_embs.detach(), sent.detach()
        mask = (captions == 0)[:, :words_embs.size(2)]
        mark("text")
        noise.normal_(0, 1)
        fakes, _, mu, logvar = generate(sent, words_embs, mask)
        mark("g_forward")
        for i, d in enumerate(nets_d):
            d.zero_grad()
            out = discriminator_loss(d, images[i], fakes[i], sent, real_labels, fake_labels)
            (out[0] if isinstance(out, tuple) else out).backward()
            opt_d[i].step()
        mark("d_steps")
        net_g.zero_grad()
        total, _ = generator_loss(nets_d, image_encoder, fakes, real_labels, words_embs, sent, match_labels,
                                  cap_lens, class_ids)
        (total + KL_loss(mu, logvar)).backward()
        opt_g.step()
        with torch.no_grad():
            for p, a in zip(net_g.parameters(), avg_g):
                a.mul_(0.999).add_(p.data, alpha=0.001)
        mark("g_step")

    net_g.train()
    for d in nets_d:
        d.train()
    measured = time_reference_iterations(iteration, warmup, reps)

    net_g.eval()
    g_eval = []
    with torch.no_grad():
        hidden = text_encoder.init_hidden(batch)
        words_embs, sent = text_encoder(captions, cap_lens, hidden)
        mask = (captions == 0)[:, :words_embs.size(2)]
        for _ in range(warmup + reps):
            noise.normal_(0, 1)
            t0 = time.perf_counter()
            generate(sent, words_embs, mask)
            g_eval.append(time.perf_counter() - t0)
    return {"repo": repo, "batch": batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "compatibility": applied,
            "median_s": {k: statistics.median(t[k] for t in measured) for k in (*PHASES, "total")},
            "iterations_s": [round(t["total"], 4) for t in measured],
            "g_forward_eval_s": statistics.median(g_eval[warmup:])}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref-root", required=True, type=Path,
                    help="folder holding AttnGAN/code, DM-GAN/code, DF-GAN/code (checkouts of the public "
                         "repositories)")
    ap.add_argument("--repo", choices=REPOS, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    out = args.json.resolve() if args.json else None
    if args.repo == "DF-GAN":
        from reference_speed_dfgan import measure_dfgan

        res = measure_dfgan(args.ref_root.resolve(), args.batch, args.threads, args.warmup, args.reps)
    else:
        res = measure(args.ref_root.resolve(), args.repo, args.batch, args.threads, args.warmup, args.reps)
    print("compatibility fixes: " + "; ".join(res["compatibility"]))
    print(f"{args.repo} (reference code), batch {res['batch']}, {res['threads']} threads, torch {res['torch']}: "
          + ", ".join(f"{k} {v:.3f} s" for k, v in res["median_s"].items())
          + f"; G forward (eval, no_grad) {res['g_forward_eval_s']:.3f} s")
    if out:
        out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
