"""Training-iteration speed of a method's ``paper-cub`` preset on the CPU, phase by phase, in three modes of the
same code, against the reference implementation timed on the same machine (``--ref-root``) or, without it, against
the reference figures of REFERENCE.md A6 (another machine: context only).

    python benchmarks/train_speed.py --method attngan [--batch 8] [--threads 2] [--warmup 2] [--reps 3]
                                     [--ref-root DIR] [--modes baseline,optimised,bf16]

One fixed synthetic batch shaped like the CUB loader's (images 64/128/256 in [-1, 1], T = 18, lengths in [6, 18]
sorted descending, vocabulary 5450, distinct classes), as the reference timing harness does. Encoders, G and Ds
have random weights: this measures speed only, never quality.

Modes, run in the same process on the same models; the fp32 modes' iterations interleaved (baseline, optimised,
baseline, ...), then bf16's (fp32 iterations run ≈ 10 % slower once bf16 kernels have run in the process):

* ``optimised``: the engine as it trains by default on the CPU (fp32; ``GanTrainer`` defaults): the generator step
  does not compute the discriminators' weight gradients (the reference computes them and throws them away at the
  next D step), the DAMSM words loss is vectorised over all (image, caption) pairs, and Adam is fused (one pass
  per tensor).
* ``bf16``: ``optimised`` with ``train.amp=bf16`` (the networks under bf16 autocast, the losses in fp32): the GPU
  default, and a choice on CPUs with native bf16 (AVX512-BF16 / AMX), where it is much faster.
* ``baseline``: the same code in the reference's op order: D weight gradients computed in the G step, the words
  loss as the reference's per-caption loop, torch's default Adam (a per-tensor loop on the CPU); fp32, NCHW.

``--ref-root DIR`` (checkouts of the public AttnGAN, DM-GAN and DF-GAN repositories, see ``reference_speed.py``)
first times the reference code in a subprocess with the same batch, threads, warm-ups and repetitions, then prints
each mode / reference. Methods built on DM-GAN (ecagan, caegan) are compared with DM-GAN's reference
(``--ref-repo``); dfgan with DF-GAN's (one D step with the gradient penalty; no DAMSM loss, so the baseline's
looped words loss does not arise).

Phases: text encode, G forward (train), D steps (3 × zero_grad/loss/backward/Adam), G step (G loss through every
D + DAMSM + KL, backward, Adam, EMA). Then G forward alone (eval, no_grad). Medians over ``--reps``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.contract.types import Batch  # noqa: E402
from phase_clock import PhaseClock  # noqa: E402

# REFERENCE.md A6 (torch 2.14.1, 2 threads, AMD EPYC, batch 8): two process runs each.
REFERENCE = {
    "attngan": {"iteration": (25.67, 24.57), "g_forward_eval": (2.31, 2.13),
                "phases": {"text": (0.007, 0.007), "g_forward": (2.68, 2.46), "d_steps": (9.10, 8.37),
                           "g_step": (13.92, 13.78)}},
    "dmgan": {"iteration": (39.83, 37.58), "g_forward_eval": (8.13, 8.49),
              "phases": {"text": (0.007, 0.006), "g_forward": (10.60, 9.80), "d_steps": (2.98, 2.69),
                         "g_step": (26.26, 25.23)}},
}
PHASES = ("text", "g_forward", "d_steps", "g_step")
MODES = ("baseline", "optimised", "bf16")


# ------------------------------------------------------------------------------------------------------
# The baseline's words loss: the reference's per-caption loop (own code, written from REFERENCE.md A3)
# ------------------------------------------------------------------------------------------------------
def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-8)


def looped_words_loss(regions, words, lengths, class_ids, gamma1, gamma2, gamma3):
    """w0, w1, attn as the reference computes them: for each caption i, its L_i words against every image."""
    batch, dim, h, w = regions.shape
    n = h * w
    flat = regions.float().reshape(batch, dim, n)
    columns, maps = [], []
    for i in range(batch):
        length = int(lengths[i])
        word = words[i:i + 1, :, :length].float().repeat(batch, 1, 1)  # B×D×L
        scores = torch.bmm(flat.transpose(1, 2), word)  # B×N×L
        attn = scores.reshape(batch * n, length).softmax(dim=1).reshape(batch, n, length)  # over words
        attn = attn.transpose(1, 2).reshape(batch * length, n)
        attn = (gamma1 * attn).softmax(dim=1).reshape(batch, length, n)  # over regions
        context = torch.bmm(flat, attn.transpose(1, 2))  # B×D×L
        maps.append(attn[i].reshape(length, h, w))
        rel = _cosine(word.transpose(1, 2).reshape(batch * length, dim),
                      context.transpose(1, 2).reshape(batch * length, dim)).reshape(batch, length)
        columns.append(torch.log(torch.exp(gamma2 * rel).sum(dim=1, keepdim=True)))
    sims = gamma3 * torch.cat(columns, dim=1)  # rows images, columns captions
    if class_ids is not None:
        ids = torch.as_tensor(class_ids).reshape(-1)
        same = (ids[:, None] == ids[None, :]) & ~torch.eye(batch, dtype=torch.bool)
        sims = sims.masked_fill(same, float("-inf"))
    labels = torch.arange(batch)
    t = words.shape[2]
    attn_out = torch.stack([F.pad(m, (0, 0, 0, 0, 0, t - m.shape[0])) for m in maps])
    return F.cross_entropy(sims, labels), F.cross_entropy(sims.t(), labels), attn_out


@contextlib.contextmanager
def patched_words_loss(replacement) -> Iterator[None]:
    """Every module that bound ``harness.nn.damsm_loss.words_loss`` uses ``replacement`` inside the block."""
    import harness.nn.damsm_loss as dl

    original = dl.words_loss
    modules = [m for m in list(sys.modules.values()) if getattr(m, "words_loss", None) is original]
    for m in modules:
        m.words_loss = replacement
    try:
        yield
    finally:
        for m in modules:
            m.words_loss = original


# ------------------------------------------------------------------------------------------------------
def synthetic_batch(batch: int, words: int, vocab: int, sizes: list[int], seed: int = 0) -> Batch:
    """One fixed batch shaped like the CUB loader's (the reference harness's synthetic batch)."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    lengths = np.sort(rng.integers(6, words + 1, size=batch))[::-1].copy()
    lengths[0] = words
    captions = torch.zeros(batch, words, dtype=torch.long)
    for i, n in enumerate(lengths):
        captions[i, :n] = torch.randint(1, vocab, (int(n),), generator=g)
    images = [torch.rand(batch, 3, s, s, generator=g) * 2 - 1 for s in sizes]
    return Batch(images=images, captions=captions, lengths=torch.from_numpy(lengths).long(),
                 class_ids=torch.arange(batch) + 1, keys=[str(i) for i in range(batch)], indices=torch.arange(batch))


REF_REPO = {"attngan": "AttnGAN", "dfgan": "DF-GAN"}  # every other built-in method is built on DM-GAN


def reference_on_this_machine(args: argparse.Namespace, repo: str) -> dict:
    """``reference_speed.py`` on the reference checkout, in a subprocess (its global config and imports stay
    out of this process); its figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reference.json"
        cmd = [sys.executable, str(Path(__file__).with_name("reference_speed.py")), "--ref-root", str(args.ref_root),
               "--repo", repo, "--batch", str(args.batch), "--threads", str(args.threads),
               "--warmup", str(args.warmup), "--reps", str(args.reps), "--json", str(out)]
        print(f"timing the reference code ({repo}) first: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="attngan")
    ap.add_argument("--preset", default="paper-cub")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--vocab-size", type=int, default=5450)
    ap.add_argument("--modes", default="baseline,optimised,bf16", help="comma-separated: " + ", ".join(MODES))
    ap.add_argument("--ref-root", type=Path, default=None, metavar="DIR",
                    help="time the reference code of DIR/AttnGAN/code or DIR/DM-GAN/code on this machine first")
    ap.add_argument("--ref-repo", choices=("AttnGAN", "DM-GAN", "DF-GAN"), default=None,
                    help="which reference to compare with (default: AttnGAN for attngan, DF-GAN for dfgan, DM-GAN "
                         "otherwise)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        ap.error(f"--modes: unknown {', '.join(unknown) or '(none given)'}; valid: {', '.join(MODES)}")
    repo = args.ref_repo or REF_REPO.get(args.method, "DM-GAN")
    same_machine = reference_on_this_machine(args, repo) if args.ref_root else None

    torch.set_num_threads(args.threads)
    from harness.build import build_method
    from harness.config import build_config, stage_sizes
    from harness.nn.damsm_loss import words_loss
    from harness.contract.plugins import build_plugins
    from harness.core.runtime import Precision
    from harness.train.engine import GanTrainer

    plugins = build_plugins()
    info = plugins.method(args.method)
    cfg = build_config(args.method, info.defaults, preset=args.preset, dataset="cub",
                       overrides=[f"train.batch_size={args.batch}"], section_types=info.config_sections)
    torch.manual_seed(0)
    modules = build_method(plugins, cfg, args.vocab_size)  # random weights: speed only
    device = torch.device("cpu")
    trainer = GanTrainer(plugins, cfg, modules, device, precision=Precision(device, fused_adam=True))
    t = cfg.train
    fused = (trainer.opt_g, trainer.opt_d)
    loop = (torch.optim.Adam(trainer.opt_g.param_groups[0]["params"], lr=t.lr_g, betas=(t.beta1, t.beta2)),
            [torch.optim.Adam(o.param_groups[0]["params"], lr=t.lr_d, betas=(t.beta1, t.beta2))
             for o in trainer.opt_d])
    setups = {  # mode → (optimisers, precision, skip D weight grads, words loss)
        "baseline": (loop, Precision(device), False, looped_words_loss),
        "optimised": (fused, Precision(device, fused_adam=True), True, None),
        "bf16": (fused, Precision(device, amp=True, fused_adam=True), True, None),
    }
    batch = synthetic_batch(args.batch, cfg.data.words_num, args.vocab_size, stage_sizes(cfg))

    # the two words losses agree (same mathematics)
    r = torch.randn(args.batch, cfg.model.embedding_dim, 17, 17)
    wv = torch.randn(args.batch, cfg.model.embedding_dim, cfg.data.words_num)
    a = words_loss(r, wv, batch.lengths, batch.class_ids, 4.0, 5.0, 10.0)
    b = looped_words_loss(r, wv, batch.lengths, batch.class_ids, 4.0, 5.0, 10.0)
    loss_diff = max(abs(float(a[0] - b[0])), abs(float(a[1] - b[1])))

    print(f"train_speed: {args.method} {args.preset}, batch {args.batch}, CPU {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}; random-weight encoders, G "
          f"and Ds (speed only); words loss vectorised vs looped: max |Δ| = {loss_diff:.2e}", flush=True)

    times: dict[str, list[dict]] = {m: [] for m in modes}
    losses: dict[str, list[float]] = {m: [] for m in modes}
    step = 0

    def run_interleaved(group: list[str]) -> None:
        nonlocal step
        for rep in range(args.warmup + args.reps):
            for mode in group:
                (trainer.opt_g, trainer.opt_d), trainer.precision, trainer.skip_d_weight_grads, words = setups[mode]
                step += 1
                noise = torch.randn(args.batch, cfg.model.z_dim)
                ctx = patched_words_loss(words) if words else contextlib.nullcontext()
                clock = PhaseClock()
                with ctx:
                    _, _, _, g_total = trainer.train_step(batch, noise, step, mark=clock.mark)
                stamps = clock.stop()
                if not torch.isfinite(g_total):
                    raise SystemExit(f"train_speed: {mode} step {step}: non-finite G loss {float(g_total)}")
                losses[mode].append(float(g_total))
                tag = "warm-up" if rep < args.warmup else "rep"
                print(f"  {tag} {rep + 1} {mode:9s} " + " ".join(f"{k} {v:.3f}" for k, v in stamps.items()),
                      flush=True)
                if rep >= args.warmup:
                    times[mode].append(stamps)

    # fp32 modes interleaved first, bf16 after them: once bf16 kernels have run in a process, fp32 iterations of
    # the same process run ≈ 10 % slower on the CPU (measured), which would bias the fp32 columns
    run_interleaved([m for m in modes if m != "bf16"])

    # G forward alone, eval + no_grad (fp32, the same code in the fp32 modes)
    trainer.precision = setups["optimised"][1]
    g = trainer.generator
    g.eval()
    gf = []
    with torch.no_grad():
        text, _ = trainer.encode_text(batch)
        for rep in range(args.warmup + args.reps):
            noise = torch.randn(args.batch, cfg.model.z_dim)
            t0 = time.perf_counter()
            g(noise, text)
            gf.append(time.perf_counter() - t0)
    g.train()
    g_eval = statistics.median(gf[args.warmup:])
    run_interleaved([m for m in modes if m == "bf16"])

    med = {m: {k: statistics.median(t[k] for t in times[m]) for k in (*PHASES, "total")} for m in modes}
    # the A6 figures were taken at paper-cub, batch 8, 2 threads only (on another machine)
    comparable = args.preset == "paper-cub" and args.batch == 8 and args.threads == 2
    a6_all = REFERENCE.get({"AttnGAN": "attngan", "DM-GAN": "dmgan"}.get(repo, ""))  # none for DF-GAN
    a6 = a6_all if comparable else None
    ref_name = f"{repo} here" if same_machine else f"{repo} A6"
    ref_phase = ({k: same_machine["median_s"][k] for k in (*PHASES, "total")} if same_machine else
                 {**{k: v[0] for k, v in a6["phases"].items()}, "total": a6["iteration"][0]} if a6 else None)
    ref_eval = same_machine["g_forward_eval_s"] if same_machine else (a6["g_forward_eval"][0] if a6 else None)
    cols = modes + ([ref_name] if ref_phase else [])
    ratios = [m for m in modes if m != "baseline"] if "baseline" in modes else []
    print()
    print(f"{'phase (s, median of ' + str(args.reps) + ')':28s}" + "".join(f"{c:>14s}" for c in cols)
          + "".join(f"{m + '/baseline':>20s}" for m in ratios))
    for k in (*PHASES, "total"):
        row = f"{k:28s}" + "".join(f"{med[m][k]:14.3f}" for m in modes)
        row += f"{ref_phase[k]:14.3f}" if ref_phase else ""
        row += "".join(f"{med[m][k] / med['baseline'][k]:20.3f}" for m in ratios)
        print(row)
    print(f"{'G forward (eval, no_grad)':28s}{g_eval:14.3f}" + (f"   ({ref_name}: {ref_eval:.3f})" if ref_eval else ""))
    result = {"method": args.method, "preset": args.preset, "batch": args.batch, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "median_s": med, "g_forward_eval_s": g_eval,
              "words_loss_max_abs_diff": loss_diff, "g_loss_by_mode": losses, "reference_repo": repo}
    if same_machine:
        print(f"\nreference code timed on this machine in this session ({repo}, batch {args.batch}, "
              f"{args.threads} threads): iteration {same_machine['median_s']['total']:.3f} s")
        result["reference_same_machine"] = same_machine
    elif a6_all is None:
        print(f"\nno recorded figures for {repo}: pass --ref-root to time the reference code on this machine")
    else:
        print(f"\nreference implementation, REFERENCE.md A6 (paper-cub, batch 8, 2 threads, another machine: context "
              f"only): {repo} iteration {a6_all['iteration'][0]} / {a6_all['iteration'][1]} s (two runs); pass "
              f"--ref-root to time the reference code on this machine")
        result["reference_a6"] = a6_all
    if ref_phase:
        for m in modes:
            print(f"{m} iteration / {ref_name} iteration: {med[m]['total'] / ref_phase['total']:.3f}")
    for m in ratios:
        print(f"{m} / baseline (same process): {med[m]['total'] / med['baseline']['total']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
