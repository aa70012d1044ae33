"""Module-level parity of this harness with the original AttnGAN / DM-GAN / DF-GAN code, for the same weights and
inputs.

    python benchmarks/reference_parity.py --ref-root DIR --method attngan|dmgan|dfgan [--batch 6] [--tol 1e-5]
                                          [--threads 2] [--vocab-size N] [--preset paper-cub] [--dataset shapes]
                                          [--data-dir DIR] [--set KEY=VALUE]... [--image-size 64] [--nf 32]

DF-GAN (``DIR/DF-GAN/code``) is compared by ``reference_parity_dfgan.py`` (its docstring says how); the rest of
this text is about AttnGAN and DM-GAN.

The import checks the text encoder's vocabulary against the data set's, so the original encoder is built with the
data set's vocabulary size (``--vocab-size`` defaults to it): ``shapes`` needs no download; ``--dataset cub
--data-dir DIR`` uses CUB's (5,450 words with AttnGAN's ``captions.pickle``).

``DIR`` holds checkouts of the two public repositories (``DIR/AttnGAN/code``, ``DIR/DM-GAN/code``), loaded with
the Python-2-era compatibility fixes and stand-ins of ``reference_speed.py`` (printed). Steps:

1. build the original modules from ``DIR`` with their config (``cfg/bird_attn2.yml`` / ``cfg/bird_DMGAN.yml``) and
   their own ``weights_init``: RNN_ENCODER, CNN_ENCODER (random Inception-v3 trunk), G_NET, D_NET64/128/256;
2. save their state dicts in the original layout (``netG_epoch_0.pth``, ``text_encoder.pth``,
   ``image_encoder.pth``, ``netD0.pth`` …) and import them with ``harness import-checkpoint`` (generator, encoders,
   discriminators), which sets ``model.attention_mask=reference``;
3. feed both sides identical inputs: tokens with unequal lengths (18/14/9/5 for batch 4), z, the conditioning
   augmentation's ε (drawn by the original's own expression from a seeded generator and handed to the harness),
   real images; every module gets the same input tensors (the text features of the original feed both
   generators, the original's fake images both discriminators), so each row measures one module;
4. print max |Δ| per tensor, fp32 on the CPU, absolute, in eval and in train mode (the DAMSM encoders stay in eval,
   as in GAN training): text features, image features, each image, attention map, μ and logvar of G, each D's
   conditional and unconditional outputs on the probability scale the original returns, each D's loss, each
   generator loss term and the total, and (spectral norm) the u, v vectors after the discriminator loss. The
   discriminators are reset to the imported state before each group, on both sides.

The original's image encoder resizes with ``nn.Upsample(mode='bilinear')``: under PyTorch 0.3/0.4.0 (2018, when
the released encoders were trained) that meant align_corners=True; under today's PyTorch it means False. The
compared rows use the 2018 semantics (a source fix adds ``align_corners=True``); the as-run difference is printed
on its own line and does not gate. Exit status 1 when a compared tensor exceeds ``--tol``.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import reference_speed as rs  # noqa: E402

METHODS = {"attngan": ("AttnGAN", "cfg/bird_attn2.yml"), "dmgan": ("DM-GAN", "cfg/bird_DMGAN.yml"),
           "dfgan": ("DF-GAN", "")}  # DF-GAN: reference_parity_dfgan.py
# CNN_ENCODER's resize: the align_corners flag becomes a module global the script sets (True: the 2018 semantics)
BILINEAR_FIX = (r"nn\.Upsample\(size=\(299, 299\), mode='bilinear'\)",
                "nn.Upsample(size=(299, 299), mode='bilinear', align_corners=_PARITY_ALIGN_CORNERS)")


def caption_lengths(batch: int, words: int) -> list[int]:
    """Unequal, descending caption lengths: 18/14/9/5 for batch 4 and 18 words, else evenly spaced from ``words``
    down to about a quarter of it (at least 1 word each)."""
    if (batch, words) == (4, 18):
        return [18, 14, 9, 5]
    low = max(1, words // 4)
    return [max(1, round(words - (words - low) * i / max(1, batch - 1))) for i in range(batch)]


class Table:
    """Rows of (mode, tensor, max |Δ|, max |original|, gated)."""

    def __init__(self, tol: float):
        self.tol, self.rows, self.notes, self.lengths = tol, [], [], []

    def add(self, mode: str, name: str, ours: Any, ref: Any, *, gated: bool = True, why: str = "") -> None:
        """One row: max |ours − ref| over all elements; ``gated=False`` rows are shown with ``why`` instead of a
        verdict and never fail the run."""
        import torch

        a, b = torch.as_tensor(ours).detach().float(), torch.as_tensor(ref).detach().float()
        if a.shape != b.shape:
            raise SystemExit(f"reference_parity: {mode} {name}: shape {list(a.shape)} here, {list(b.shape)} in the "
                             f"original")
        delta = (a - b).abs().max().item() if a.numel() else 0.0
        self.rows.append((mode, name, delta, b.abs().max().item() if b.numel() else 0.0, gated, why))

    def failures(self) -> list[tuple]:
        """Gated rows above the tolerance (or NaN)."""
        return [r for r in self.rows if r[4] and not r[2] <= self.tol]  # NaN fails too

    def markdown(self) -> str:
        """The rows as a Markdown table."""
        lines = ["| mode | tensor | max abs diff | max abs (original) | ≤ tol |", "|---|---|---|---|---|"]
        for mode, name, delta, scale, gated, why in self.rows:
            ok = ("yes" if delta <= self.tol else "**no**") if gated else f"not gated ({why})"
            lines.append(f"| {mode} | {name} | {delta:.3g} | {scale:.3g} | {ok} |")
        return "\n".join(lines)


def load_original(ref_root: Path, repo: str, cfg_file: str) -> tuple[Any, list[str]]:
    """The original code imported with reference_speed's fixes plus the bilinear switch; returns (namespace,
    fixes applied)."""
    rs.SOURCE_FIXES["model"] = [*rs.SOURCE_FIXES["model"], BILINEAR_FIX]
    applied = rs.install_environment(ref_root, repo)
    from miscc.config import cfg, cfg_from_file

    cfg_from_file(cfg_file)
    cfg.CUDA = False
    import model as M
    import miscc.losses as L
    import miscc.utils as U

    M._PARITY_ALIGN_CORNERS = True
    return argparse.Namespace(cfg=cfg, M=M, L=L, U=U), applied


def harness_overrides(cfg: Any, word_dim: int) -> list[str]:
    """The harness config keys that mirror the original config's sizes and loss weights (``word_dim``: the
    RNN_ENCODER's word embedding size, 300 in the original; the first stage is always 64²)."""
    final = 64 * 2 ** (cfg.TREE.BRANCH_NUM - 1)  # the protocol's data.image_size; data.base_size follows (64)
    return [f"pretrain.damsm.word_embedding_dim={word_dim}", f"data.image_size={final}",
            f"model.gf_dim={cfg.GAN.GF_DIM}", f"model.df_dim={cfg.GAN.DF_DIM}", f"model.z_dim={cfg.GAN.Z_DIM}",
            f"model.condition_dim={cfg.GAN.CONDITION_DIM}", f"model.embedding_dim={cfg.TEXT.EMBEDDING_DIM}",
            f"model.r_num={cfg.GAN.R_NUM}", f"data.branch_num={cfg.TREE.BRANCH_NUM}",
            f"loss.damsm_lambda={cfg.TRAIN.SMOOTH.LAMBDA}", f"loss.gamma1={cfg.TRAIN.SMOOTH.GAMMA1}",
            f"loss.gamma2={cfg.TRAIN.SMOOTH.GAMMA2}", f"loss.gamma3={cfg.TRAIN.SMOOTH.GAMMA3}"]


def dataset_vocab_size(args: argparse.Namespace, root: Path) -> int:
    """The vocabulary size of ``args.dataset``'s training split (what ``harness import-checkpoint`` checks the text
    encoder against), built under the results root ``root``."""
    from harness.contract.plugins import build_plugins
    from harness.build import build_split, prepare_config

    plugins = build_plugins()
    cfg = prepare_config(plugins, args.method, dataset=args.dataset, data_dir=args.data_dir, preset=args.preset,
                         overrides=[], seed=0)
    return len(build_split(plugins, cfg, "train", train=False, cache_root=root).vocab)


def compare(args: argparse.Namespace) -> tuple[Table, list[str], str]:
    """Run the whole comparison; returns the table, the compatibility fixes and the import's stderr line."""
    warnings.filterwarnings("ignore")
    repo, cfg_file = METHODS[args.method]
    ref, applied = load_original(args.ref_root.resolve(), repo, cfg_file)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cfg, M, L, U = ref.cfg, ref.M, ref.L, ref.U
    dm = args.method == "dmgan"
    tmp = Path(tempfile.mkdtemp(prefix="reference_parity-"))
    b, words = args.batch, cfg.TEXT.WORDS_NUM
    vocab = args.vocab_size or dataset_vocab_size(args, tmp / "results")

    # 1. the original modules, its own initialisation
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    r_text = M.RNN_ENCODER(vocab, nhidden=cfg.TEXT.EMBEDDING_DIM)
    r_image = M.CNN_ENCODER(cfg.TEXT.EMBEDDING_DIM)
    r_g = M.G_NET()
    r_g.apply(U.weights_init)
    r_ds = [M.D_NET64(), M.D_NET128(), M.D_NET256()][: cfg.TREE.BRANCH_NUM]
    for d in r_ds:
        d.apply(U.weights_init)
    for m in (r_text, r_image):  # frozen and in eval, as the original trainer holds them
        m.eval()
        m.requires_grad_(False)

    # 2. saved in the original layout, imported by the harness
    files = {"g": tmp / "netG_epoch_0.pth", "text": tmp / "text_encoder.pth", "image": tmp / "image_encoder.pth"}
    torch.save(r_g.state_dict(), files["g"])
    torch.save(r_text.state_dict(), files["text"])
    torch.save(r_image.state_dict(), files["image"])
    d_files = []
    for i, d in enumerate(r_ds):
        d_files.append(tmp / f"netD{i}.pth")
        torch.save(d.state_dict(), d_files[-1])
    r_d_init = [copy.deepcopy(d.state_dict()) for d in r_ds]

    from harness.contract.plugins import build_plugins
    from harness.build import load_inference_models
    from imported_run import import_checkpoint

    given = [args.method, str(files["g"]), "--text-encoder", str(files["text"]), "--image-encoder",
             str(files["image"]), "--discriminators", ",".join(map(str, d_files))]
    run, import_line = import_checkpoint(given, args, tmp,
                                         harness_overrides(cfg, r_text.encoder.weight.shape[1]) + list(args.overrides))
    plugins = build_plugins()
    models = load_inference_models(plugins, run)
    mods = models.modules
    h_g, h_ds, h_text, h_image = mods.generator, mods.discriminators, mods.text_encoder, mods.image_encoder
    # trainable, as the original's G and Ds: with frozen weights torch's F.linear takes another kernel for the
    # memory's 3-d gate input (1 ulp apart, growing to ~3e-6 at 256² through train-mode BatchNorm)
    h_g.requires_grad_(True)
    h_ds.requires_grad_(True)
    h_d_init = copy.deepcopy(h_ds.state_dict())
    hooks = plugins.method_hooks(args.method)

    def reset_ds() -> None:
        for d, sd in zip(r_ds, r_d_init):
            d.load_state_dict(sd)
        h_ds.load_state_dict(h_d_init)

    # 3. identical inputs
    gen = torch.Generator().manual_seed(args.seed + 1)
    lengths = caption_lengths(b, words)
    captions = torch.zeros(b, words, dtype=torch.long)
    for i, n in enumerate(lengths):
        captions[i, :n] = torch.randint(1, vocab, (n,), generator=gen)
    cap_lens = torch.tensor(lengths)
    class_ids = np.array([1, 2, 1, 3] + list(range(4, b)))[:b]  # one repeated class: the same-class mask
    sizes = [64 * 2 ** i for i in range(len(r_ds))]
    reals = [torch.rand(b, 3, s, s, generator=gen) * 2 - 1 for s in sizes]
    z = torch.randn(b, cfg.GAN.Z_DIM, generator=gen)
    real_labels, fake_labels, match_labels = torch.ones(b), torch.zeros(b), torch.arange(b)

    from harness.nn import conditioning
    from harness.contract.types import Batch, GenOutput, Step, TextFeatures

    def ca_eps(shape: tuple) -> torch.Tensor:
        torch.manual_seed(args.seed + 2)
        return torch.FloatTensor(torch.Size(shape)).normal_()  # the original's own draw expression

    table = Table(args.tol)
    table.lengths = lengths
    bilinear_fixed = any("align_corners=_PARITY_ALIGN_CORNERS" in a for a in applied)
    table.notes.append("image encoder: the original's nn.Upsample(mode='bilinear') given align_corners=True (2018 "
                       "semantics); the as-run rows use today's default (False)" if bilinear_fixed else
                       "image encoder: the original already resizes with align_corners=True (no as-run difference)")
    for mode in ("eval", "train"):
        for m in (r_g, *r_ds):
            m.train(mode == "train")
        h_g.train(mode == "train")
        h_ds.train(mode == "train")
        with torch.no_grad():
            # text and image encoders
            words_embs, sent = r_text(captions, cap_lens, r_text.init_hidden(b))
            ht = h_text(captions, cap_lens)
            table.add(mode, "text: words", ht.words, words_embs)
            table.add(mode, "text: sentence", ht.sent, sent)
            regions, code = r_image(reals[-1])
            h_regions, h_code = h_image(reals[-1])
            table.add(mode, "image: regions (align_corners=True)", h_regions, regions)
            table.add(mode, "image: code (align_corners=True)", h_code, code)
            if bilinear_fixed:
                M._PARITY_ALIGN_CORNERS = False
                regions_asrun, code_asrun = r_image(reals[-1])
                M._PARITY_ALIGN_CORNERS = True
                table.add(mode, "image: regions (original as run today)", h_regions, regions_asrun, gated=False,
                          why="align_corners=False")
                table.add(mode, "image: code (original as run today)", h_code, code_asrun, gated=False,
                          why="align_corners=False")

            # generator: same text features, z and ε on both sides
            mask = (captions == 0)[:, : words_embs.size(2)]
            text = TextFeatures(words=words_embs, sent=sent, mask=mask, lengths=cap_lens)
            eps = ca_eps((b, cfg.GAN.CONDITION_DIM))
            torch.manual_seed(args.seed + 2)  # CA_NET.reparametrize draws ε = FloatTensor(size).normal_()
            r_fakes, r_att, r_mu, r_logvar = r_g(z, sent, words_embs, mask, *((cap_lens,) if dm else ()))
            saved = conditioning.item_randn
            conditioning.item_randn = lambda like: eps.to(like.dtype)
            try:
                h_out: GenOutput = h_g(z, text)
            finally:
                conditioning.item_randn = saved
            for i, (x, y) in enumerate(zip(h_out.images, r_fakes)):
                table.add(mode, f"G: image {x.shape[-1]}", x, y)
            for i, (x, y) in enumerate(zip(h_out.attn, r_att)):
                table.add(mode, f"G: attention map {i + 1} ({x.shape[-1]}²)", x, y)
            table.add(mode, "G: mu", h_out.mu, r_mu)
            table.add(mode, "G: logvar", h_out.logvar, r_logvar)

            # discriminators on real images: probabilities
            reset_ds()
            for i, (rd, hd) in enumerate(zip(r_ds, h_ds)):
                rf, hf = rd(reals[i]), hd(reals[i])
                table.add(mode, f"D{i}: features", hf, rf)
                table.add(mode, f"D{i}: conditional (prob.)", torch.sigmoid(hd.COND_DNET(hf, sent)),
                          rd.COND_DNET(rf, sent))
                table.add(mode, f"D{i}: unconditional (prob.)", torch.sigmoid(hd.UNCOND_DNET(hf)),
                          rd.UNCOND_DNET(rf))

            # losses, on the original's fakes (identical inputs for both sides)
            batch = Batch(images=reals, captions=captions, lengths=cap_lens, class_ids=torch.as_tensor(class_ids),
                          keys=[str(i) for i in range(b)], indices=torch.arange(b))
            fakes = [f.detach() for f in r_fakes]
            output = GenOutput(images=fakes, mu=r_mu, logvar=r_logvar, attn=list(r_att))
            step = Step(batch=batch, text=text, damsm_text=text, noise=z, output=output, discriminators=h_ds,
                        image_encoder=h_image, aux=mods.aux, cfg=models.cfg)
            reset_ds()
            for i, rd in enumerate(r_ds):
                r_loss = L.discriminator_loss(rd, reals[i], fakes[i], sent, real_labels, fake_labels)
                r_loss = r_loss[0] if isinstance(r_loss, tuple) else r_loss  # DM-GAN also returns a log line
                h_loss = next(iter(hooks.harness_discriminator_loss(step=step, stage=i).values()))
                table.add(mode, f"D{i}: loss", h_loss, r_loss)
            if dm:
                from harness.nn.spectral_norm import to_reference_layout

                for i, (rd, hd) in enumerate(zip(r_ds, h_ds)):
                    ours = to_reference_layout(hd.state_dict())
                    theirs = rd.state_dict()
                    keys = [k for k in theirs if k.endswith(("weight_u", "weight_v"))]
                    table.add(mode, f"D{i}: spectral-norm u, v after the D loss ({len(keys)} vectors)",
                              torch.cat([ours[k].flatten() for k in keys]), torch.cat([theirs[k].flatten()
                                                                                       for k in keys]))

            reset_ds()
            h_terms = hooks.harness_generator_loss(step=step)
            reset_ds()
            for i, rd in enumerate(r_ds):  # the original's per-stage adversarial term (losses.generator_loss)
                feats = rd(fakes[i])
                bce = torch.nn.BCELoss()
                adv = bce(rd.COND_DNET(feats, sent), real_labels) + bce(rd.UNCOND_DNET(feats), real_labels)
                table.add(mode, f"G loss: adversarial {sizes[i]}", h_terms[f"g_adv_{sizes[i]}"], adv)
            r_regions, r_code = r_image(fakes[-1])
            w0, w1, _ = L.words_loss(r_regions, words_embs, match_labels, cap_lens, class_ids, b)
            s0, s1 = L.sent_loss(r_code, sent, match_labels, class_ids, b)
            lam = cfg.TRAIN.SMOOTH.LAMBDA
            table.add(mode, "G loss: DAMSM words", h_terms["damsm_words"], (w0 + w1) * lam)
            table.add(mode, "G loss: DAMSM sentence", h_terms["damsm_sent"], (s0 + s1) * lam)
            table.add(mode, "G loss: KL", h_terms["kl"], L.KL_loss(r_mu, r_logvar))
            reset_ds()
            r_total, _ = L.generator_loss(r_ds, r_image, fakes, real_labels, words_embs, sent, match_labels,
                                          cap_lens, class_ids)
            # the sum of the gated terms above, in the original's order ((Σ adversarial) + (words + sentence)) + KL;
            # not gated: one fp32 ulp of a total of 64-128 is 7.6e-6, so a one-ulp difference in any term can move
            # the rounded total by 1.5e-5 although every term is within the tolerance
            h_total = 0
            for size in sizes:
                h_total = h_total + h_terms[f"g_adv_{size}"]
            h_total = h_total + (h_terms["damsm_words"] + h_terms["damsm_sent"]) + h_terms["kl"]
            r_total = r_total + L.KL_loss(r_mu, r_logvar)
            ulp = torch.finfo(torch.float32).eps * 2.0 ** torch.floor(torch.log2(r_total.abs())).item()
            table.add(mode, "G loss: total", h_total, r_total, gated=False,
                      why=f"sum of the terms above; fp32 ulp here {ulp:.2g}")
    return table, applied, import_line


def main(argv: Optional[list[str]] = None) -> int:
    """Command line: prints the fixes, the import's line and the table; returns 1 when a gated row fails."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref-root", required=True, type=Path,
                    help="folder holding AttnGAN/code, DM-GAN/code, DF-GAN/code (checkouts of the public "
                         "repositories)")
    ap.add_argument("--method", choices=sorted(METHODS), required=True)
    # 6: B divides no stage's H·W, so a mask that gives pixel j caption j mod B (wrong) cannot pass as the
    # original's row pattern (with 4 the two coincide)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--tol", type=float, default=1e-5, help="largest max |Δ| a compared tensor may have")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=None, help="default: the data set's vocabulary size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="paper-cub", help="protocol paper + the method's paper-cub preset")
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--data-dir", default=None, help="the data set's directory (cub, coco)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra harness config override for the import (e.g. pretrain.damsm.image_encoder=...)")
    ap.add_argument("--image-size", type=int, default=64, help="dfgan only: the image side (the original: 256)")
    ap.add_argument("--nf", type=int, default=32, help="dfgan only: NetG's and NetD's nf (the original: 32)")
    args = ap.parse_args(argv)
    if args.batch < 2:
        ap.error("--batch must be at least 2 (the discriminator's wrong pairs, unequal lengths)")
    if args.method == "dfgan":
        from reference_parity_dfgan import compare_dfgan

        table = Table(args.tol)
        applied = compare_dfgan(args, table)
        import_line, table.lengths = table.import_line, "(sentence features given)"
    else:
        table, applied, import_line = compare(args)
    print("compatibility fixes: " + "; ".join(applied))
    print(f"harness import-checkpoint: {import_line}")
    print(f"{args.method}: batch {args.batch}, caption lengths {table.lengths}, fp32, CPU, "
          f"tolerance {args.tol:g}")
    for note in table.notes:
        print(note)
    print(table.markdown())
    bad = table.failures()
    if bad:
        print(f"FAIL: {len(bad)} compared tensor(s) above {args.tol:g}: "
              + ", ".join(f"{m} {n} ({d:.3g})" for m, n, d, *_ in bad))
        return 1
    print(f"OK: every compared tensor within {args.tol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
