"""DF-GAN's part of ``reference_parity.py``: this harness's dfgan plugin against the original tobran/DF-GAN code,
for the same imported weights and batch.

``DIR/DF-GAN/code`` is a checkout's ``code`` folder. Steps:

1. build the original's ``NetG``, ``NetD`` and ``NetC`` (``models/GAN.py``) at ``--image-size`` with nf
   ``--nf``, z 100 and the 256-d sentence (``cfg/bird.yml``), then move every parameter away from its
   initialisation (N(0, 0.02) added, each DBlock's γ set to 0.1): at the original's initialisation the affine
   transforms are the identity and NetD's residual branches are multiplied by 0, which would hide their
   differences;
2. save them as the original's ``state_epoch_0.pth`` (``{'model': {'netG', 'netD', 'netC'}, 'optimizers',
   'epoch'}``) and import it with ``harness import-checkpoint dfgan`` (fresh DAMSM encoders of this harness,
   the small image encoder: both sides get the same sentence features, so the encoders take no part);
3. feed both sides the same sentence features, noise and real images, and compare max |Δ| per tensor, fp32 on
   the CPU: the image, NetD's features of the real and the fake images, NetC's logits of the real, mismatched
   and fake pairs, each term of the D loss (real, fake, mismatched, MA-GP) with the original's ``hinge_loss``,
   ``predict_loss`` and ``MA_GP`` (``lib/modules.py``) composed as its ``train`` composes them, the generator's
   term, and the D step's parameter gradients (the penalty's double backward included).

The three loss functions are read from ``lib/modules.py`` by name (that module's other imports, data loading and
Inception, are not needed); their ``.cuda()`` calls are removed so they run on the CPU (printed as a fix).
"""
from __future__ import annotations

import ast
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

LOSS_FUNCTIONS = ("hinge_loss", "predict_loss", "MA_GP")
CPU_FIX = (".cuda()", "")
# off the initialisation, small enough that the penalty (a 6th power of a gradient norm) stays near 1, where an
# absolute tolerance of 1e-5 is a relative one too
PERTURB, GAMMA = 0.02, 0.1
Z_DIM, COND_DIM = 100, 256  # cfg/bird.yml and cfg/coco.yml


def original_loss_functions(code_dir: Path) -> tuple[types.SimpleNamespace, list[str]]:
    """``hinge_loss``, ``predict_loss`` and ``MA_GP`` compiled from the checkout's ``lib/modules.py`` alone,
    ``.cuda()`` removed; returns (namespace, fixes applied)."""
    import torch

    path = code_dir / "lib" / "modules.py"
    source = path.read_text()
    tree = ast.parse(source)
    found = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in LOSS_FUNCTIONS}
    missing = [n for n in LOSS_FUNCTIONS if n not in found]
    if missing:
        raise SystemExit(f"reference_parity: {path} defines no {', '.join(missing)}")
    namespace: dict[str, Any] = {"torch": torch, "nn": torch.nn}
    applied = []
    for name in LOSS_FUNCTIONS:
        text = ast.get_source_segment(source, found[name])
        if CPU_FIX[0] in text:
            applied.append(f"lib/modules.py {name}: {CPU_FIX[0]} removed (CPU)")
            text = text.replace(*CPU_FIX)
        exec(compile(text, str(path), "exec"), namespace)
    return types.SimpleNamespace(**{n: namespace[n] for n in LOSS_FUNCTIONS}), applied


def original_networks(code_dir: Path, nf: int, image_size: int, seed: int) -> dict[str, Any]:
    """The original's NetG, NetD, NetC from ``models/GAN.py``, parameters moved off their initialisation."""
    import torch

    sys.path.insert(0, str(code_dir))
    from models.GAN import NetC, NetD, NetG

    torch.manual_seed(seed)
    nets = {"netG": NetG(nf, Z_DIM, COND_DIM, image_size, 3), "netD": NetD(nf, image_size, 3),
            "netC": NetC(nf, COND_DIM)}
    with torch.no_grad():
        for net in nets.values():
            for name, p in net.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(GAMMA)
                else:
                    p.add_(torch.randn_like(p) * PERTURB)
    return nets


def import_state_epoch(nets: dict[str, Any], args: Any, tmp: Path) -> tuple[Any, Any, Any, str]:
    """``harness import-checkpoint dfgan`` of the networks saved as ``state_epoch_0.pth``; returns the harness's
    (generator, discriminators, the loaded models, the import's stderr line)."""
    import torch

    from harness.build import build_split, load_inference_models, prepare_config
    from harness.contract.plugins import build_plugins
    from harness.nn.damsm import build_damsm
    from imported_run import import_checkpoint

    # the DAMSM encoders take no part (both sides get the same sentence features): the small one is cheaper
    overrides = [f"data.image_size={args.image_size}", f"model.gf_dim={args.nf}", f"model.df_dim={args.nf}",
                 f"model.z_dim={Z_DIM}", f"model.embedding_dim={COND_DIM}", "pretrain.damsm.image_encoder=small_cnn",
                 *args.overrides]
    plugins = build_plugins()
    cfg = prepare_config(plugins, "dfgan", dataset=args.dataset, data_dir=args.data_dir, preset=args.preset,
                         overrides=overrides, seed=0)
    vocab = len(build_split(plugins, cfg, "train", train=False, cache_root=tmp / "results").vocab)
    files = {"state": tmp / "state_epoch_0.pth", "text": tmp / "text.pth", "image": tmp / "image.pth"}
    torch.save({"model": {k: n.state_dict() for k, n in nets.items()}, "optimizers": {}, "epoch": 0},
               files["state"])
    damsm = build_damsm(cfg, vocab)
    torch.save(damsm.text.state_dict(), files["text"])
    torch.save(damsm.image.state_dict(), files["image"])
    run, import_line = import_checkpoint(["dfgan", str(files["state"]), "--text-encoder", str(files["text"]),
                                          "--image-encoder", str(files["image"])], args, tmp, overrides)
    models = load_inference_models(plugins, run)
    g, d = models.modules.generator, models.modules.discriminators
    g.requires_grad_(True)
    for p in d.parameters():  # load_inference_models freezes everything; the D step needs the trainable ones
        p.requires_grad_(True)
    for block in d[0].netD.DBlocks:
        block.conv_s.requires_grad_(block.learned_shortcut)
    return g, d, models, import_line


def compare_dfgan(args: Any, table: Any) -> list[str]:
    """Fill ``table`` with DF-GAN's rows; returns the compatibility fixes applied to the original."""
    import torch

    from harness.contract.types import Batch, GenOutput, Step, TextFeatures
    from harness.contract.plugins import build_plugins

    torch.set_num_threads(args.threads)
    code_dir = (args.ref_root / "DF-GAN" / "code").resolve()
    L, applied = original_loss_functions(code_dir)
    nets = original_networks(code_dir, args.nf, args.image_size, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="reference_parity-"))
    h_g, h_ds, models, table.import_line = import_state_epoch(nets, args, tmp)
    r_g, r_d, r_c = nets["netG"], nets["netD"], nets["netC"]
    hooks = build_plugins().method_hooks("dfgan")

    b = args.batch
    gen = torch.Generator().manual_seed(args.seed + 1)
    sent = torch.randn(b, COND_DIM, generator=gen)
    noise = torch.randn(b, Z_DIM, generator=gen)
    real = torch.rand(b, 3, args.image_size, args.image_size, generator=gen) * 2 - 1
    for m in (r_g, r_d, r_c, h_g, h_ds):
        m.train()
    h_d = h_ds[0]

    # generator and discriminator forward
    with torch.no_grad():
        r_fake = r_g(noise, sent)
        text = TextFeatures(words=sent.new_zeros(b, COND_DIM, 1), sent=sent, mask=torch.zeros(b, 1, dtype=torch.bool),
                            lengths=torch.ones(b, dtype=torch.long))
        table.add("train", "G: image", h_g(noise, text).images[0], r_fake)
        r_feats = {"real": r_d(real), "fake": r_d(r_fake)}
        for name, x in (("real", real), ("fake", r_fake)):
            table.add("train", f"NetD: features ({name})", h_d.netD(x), r_feats[name])
        h_real, h_mis = h_d(real, sent, mismatched=True)
        table.add("train", "NetC: logits (real, its sentence)", h_real, r_c(r_feats["real"], sent).flatten())
        rolled = torch.cat((r_feats["real"][1:], r_feats["real"][0:1]), dim=0)
        table.add("train", "NetC: logits (next real, sentence)", h_mis, r_c(rolled, sent).flatten())
        table.add("train", "NetC: logits (fake, sentence)", h_d(r_fake, sent), r_c(r_feats["fake"], sent).flatten())

    # the D step: the original's train() body on its networks, the harness's loss hook on its own
    imgs, sent_leaf = real.clone().requires_grad_(), sent.clone().requires_grad_()
    real_features = r_d(imgs)
    pred_real, err_real = L.predict_loss(r_c, real_features, sent_leaf, negtive=False)
    mis_features = torch.cat((real_features[1:], real_features[0:1]), dim=0)
    _, err_mis = L.predict_loss(r_c, mis_features, sent_leaf, negtive=True)
    _, err_fake = L.predict_loss(r_c, r_d(r_fake.detach()), sent_leaf, negtive=True)
    err_magp = L.MA_GP(imgs, sent_leaf, pred_real)
    err_d = err_real + (err_fake + err_mis) / 2.0 + err_magp
    batch = Batch(images=[real], captions=torch.ones(b, 1, dtype=torch.long), lengths=torch.ones(b, dtype=torch.long),
                  class_ids=torch.arange(b), keys=[str(i) for i in range(b)], indices=torch.arange(b))
    step = Step(batch=batch, text=text, damsm_text=text, noise=noise,
                output=GenOutput(images=[r_fake], mu=noise[:, :0], logvar=noise[:, :0]), discriminators=h_ds,
                image_encoder=models.modules.image_encoder, aux=models.modules.aux, cfg=models.cfg)
    terms = hooks.harness_discriminator_loss(step=step, stage=0)
    for key, ref in (("d_real", err_real), ("d_fake", err_fake / 2.0), ("d_mismatch", err_mis / 2.0),
                     ("d_magp", err_magp)):
        table.add("train", f"D loss: {key}", terms[key], ref)
    h_total = terms["d_real"] + (terms["d_fake"] + terms["d_mismatch"]) + terms["d_magp"]
    table.add("train", "D loss: total", h_total, err_d)
    _zero_grads(r_d, r_c, h_d)
    err_d.backward()
    h_total.backward()
    for net in ("netD", "netC"):
        ref_net = {"netD": r_d, "netC": r_c}[net]
        ours = dict(getattr(h_d, net).named_parameters())
        names = [n for n, p in ref_net.named_parameters() if p.grad is not None]
        table.add("train", f"D step: {net} parameter gradients ({len(names)} tensors, MA-GP's double backward)",
                  torch.cat([ours[n].grad.flatten() for n in names]),
                  torch.cat([dict(ref_net.named_parameters())[n].grad.flatten() for n in names]))

    # the G step's loss on the fake image, through the (unchanged) discriminator
    _zero_grads(r_d, r_c, h_d)
    h_fake = h_g(noise, text).images[0]
    step.output = GenOutput(images=[h_fake], mu=noise[:, :0], logvar=noise[:, :0])
    table.add("train", "G loss: g_adv", hooks.harness_generator_loss(step=step)["g_adv"],
              -r_c(r_d(r_g(noise, sent)), sent).mean())
    return applied


def _zero_grads(*modules: Any) -> None:
    for m in modules:
        for p in m.parameters():
            p.grad = None
