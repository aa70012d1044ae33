"""DF-GAN's part of ``reference_speed.py``: one training iteration of the original tobran/DF-GAN code
(``DIR/DF-GAN/code``) timed phase by phase on a fixed synthetic batch, as its ``code/lib/modules.py`` ``train``
runs it: text encode (``models/DAMSM.py`` RNN_ENCODER, frozen), G forward, the D step (real, mismatched and fake
hinge terms + MA-GP, backward, Adam), the G step (−NetC(NetD(fake)), backward, Adam). ``bird.yml``'s sizes
(nf 32, z 100, 256-d sentence, 256²) and ``train.py``'s optimisers; random weights (speed only)."""
from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from phase_clock import time_reference_iterations
from reference_parity_dfgan import COND_DIM, Z_DIM, original_loss_functions

PHASES = ("text", "g_forward", "d_steps", "g_step")
NF, IMAGE_SIZE, WORDS, VOCAB = 32, 256, 18, 5450


def measure_dfgan(ref_root: Path, batch: int, threads: int, warmup: int, reps: int, *, nf: int = NF,
                  image_size: int = IMAGE_SIZE) -> dict:
    """Per-phase medians of the original's iteration and of G forward (eval, no_grad), in reference_speed's
    result layout (``nf``, ``image_size``: bird.yml's unless a test asks for less)."""
    import torch

    torch.set_num_threads(threads)
    code_dir = ref_root / "DF-GAN" / "code"
    L, applied = original_loss_functions(code_dir)
    sys.path.insert(0, str(code_dir))
    from models.DAMSM import RNN_ENCODER
    from models.GAN import NetC, NetD, NetG

    torch.manual_seed(0)
    text_encoder = RNN_ENCODER(VOCAB, nhidden=COND_DIM).eval().requires_grad_(False)
    net_g, net_d, net_c = NetG(nf, Z_DIM, COND_DIM, image_size, 3), NetD(nf, image_size, 3), NetC(nf, COND_DIM)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=0.0001, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam([*net_d.parameters(), *net_c.parameters()], lr=0.0004, betas=(0.0, 0.9))
    images = torch.rand(batch, 3, image_size, image_size) * 2 - 1
    lengths = sorted(torch.randint(6, WORDS + 1, (batch,)).tolist(), reverse=True)
    lengths[0] = WORDS
    captions = torch.zeros(batch, WORDS, dtype=torch.long)
    for i, n in enumerate(lengths):
        captions[i, :n] = torch.randint(1, VOCAB, (n,))
    cap_lens = torch.tensor(lengths)

    def encode() -> torch.Tensor:
        with torch.no_grad():
            _, sent = text_encoder(captions, cap_lens, text_encoder.init_hidden(batch))
        return sent.detach()

    def iteration(mark: Callable[[str], None]) -> None:
        sent = encode().requires_grad_()
        imgs = images.clone().requires_grad_()
        mark("text")
        fake = net_g(torch.randn(batch, Z_DIM), sent)
        mark("g_forward")
        real_features = net_d(imgs)
        pred_real, err_real = L.predict_loss(net_c, real_features, sent, negtive=False)
        mis_features = torch.cat((real_features[1:], real_features[0:1]), dim=0)
        _, err_mis = L.predict_loss(net_c, mis_features, sent, negtive=True)
        _, err_fake = L.predict_loss(net_c, net_d(fake.detach()), sent, negtive=True)
        err_d = err_real + (err_fake + err_mis) / 2.0 + L.MA_GP(imgs, sent, pred_real)
        opt_d.zero_grad()
        err_d.backward()
        opt_d.step()
        mark("d_steps")
        err_g = -net_c(net_d(fake), sent).mean()
        opt_g.zero_grad()
        err_g.backward()
        opt_g.step()
        mark("g_step")

    for m in (net_g, net_d, net_c):
        m.train()
    measured = time_reference_iterations(iteration, warmup, reps)
    net_g.eval()
    g_eval = []
    with torch.no_grad():
        sent = encode()
        for _ in range(warmup + reps):
            t0 = time.perf_counter()
            net_g(torch.randn(batch, Z_DIM), sent)
            g_eval.append(time.perf_counter() - t0)
    return {"repo": "DF-GAN", "batch": batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "compatibility": applied,
            "median_s": {k: statistics.median(t[k] for t in measured) for k in (*PHASES, "total")},
            "iterations_s": [round(t["total"], 4) for t in measured],
            "g_forward_eval_s": statistics.median(g_eval[warmup:])}
