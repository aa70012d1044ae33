"""Stage 1: GAN training, generic over methods through the component and loss hooks.

One iteration, in the order of the original AttnGAN / DM-GAN ``code/trainer.py`` loop:

1. text encoding with the frozen encoders (eval, no grad);
2. one generator forward;
3. for each discriminator i: zero_grad → ``harness_discriminator_loss(step, stage=i)`` terms summed → backward →
   step;
4. generator zero_grad → ``harness_generator_loss(step)`` terms summed (through every, just updated, D) →
   backward → step;
5. EMA of the generator's parameters; ``harness_on_step_end``.

Determinism: data order, noise and every other random draw are reproducible (``harness.core.seed``), and
checkpoints hold every state, so ``harness train --resume`` continues bit for bit on CPU.

Device: CUDA when available (bf16 autocast around the networks and the loss hooks, which compute their losses in
fp32; channels_last; optional ``torch.compile`` of G), else CPU in fp32 (NCHW: channels_last is slower there).
Fused Adam on both. The step never waits for the
device except every ``train.log_every`` steps (logging, the non-finite check) and at checkpoints.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, TYPE_CHECKING

import torch
from torch import Tensor, nn

from harness.build import build_split
from harness.config import Config
from harness.util.errors import HarnessError
from harness.nn.item_noise import per_item_draws
from harness.core.runtime import Precision, batch_loader
from harness.core.checkpoint import (aux_state, last_good, list_checkpoints, load_aux_state,
                                      newest_good_checkpoint, read_pretrained, resume_hint,
                                      save_checkpoint, write_pretrained)
from harness.core.distributed import (average_across_ranks, convert_sync_bn, current, init_distributed, is_main,
                                       local_slice, no_sync, on_main, reseed_rank_streams, roll_batch, shard_batches,
                                       wrap_ddp, wrap_each)
from harness.train.ema import ParameterEMA
from harness.core.seed import (epoch_batches, fixed_noise, preserved_rng, rng_state, sample_noise,
                                seed_everything, set_rng_state)
from harness.contract.types import Batch, Step, TextFeatures

if TYPE_CHECKING:  # type hints only
    from torch.utils.tensorboard import SummaryWriter

    from harness.build import MethodModules
    from harness.data.dataset import TextImageDataset
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir


# ------------------------------------------------------------------------------------------------------
# One iteration
# ------------------------------------------------------------------------------------------------------
def _no_mark(phase: str) -> None:
    return None


class GanTrainer:
    """The models, optimisers and EMA of one method, and ``train_step`` (one reference-order iteration).

    ``skip_d_weight_grads`` (default True) stops the generator step from computing the discriminators' weight
    gradients, which the reference computes and then throws away (the next D step zeroes them): same
    mathematics, less work. The benchmark's baseline mode turns it off.
    """

    def __init__(self, plugins: Plugins, cfg: Config, modules: MethodModules, device: torch.device, *,
                 precision: Optional[Precision] = None, skip_d_weight_grads: bool = True):
        self.plugins, self.cfg, self.modules, self.device = plugins, cfg, modules, device
        self.precision = precision or Precision.from_config(cfg, device)
        self.hooks = plugins.method_hooks(cfg.method)
        self.skip_d_weight_grads = skip_d_weight_grads
        m = modules
        frozen = [m.text_encoder, m.image_encoder, m.damsm.text, m.damsm.image]
        for enc in frozen:  # frozen and in eval() for the whole GAN stage, as the original trainer
            enc.requires_grad_(False)
            enc.eval()
        for mod in [*frozen, m.generator, m.discriminators, *m.aux.values()]:
            mod.to(device)
        if cfg.train.sync_bn:  # BatchNorm statistics over the global batch on N ranks
            m.generator = convert_sync_bn(m.generator, device)
            m.discriminators = convert_sync_bn(m.discriminators, device)
        if self.precision.channels_last:
            for mod in (m.generator, m.discriminators, m.image_encoder):
                mod.to(memory_format=torch.channels_last)
        self.generator: nn.Module = m.generator
        self.discriminators: nn.ModuleList = m.discriminators
        self.generator.train()
        self.discriminators.train()
        t = cfg.train
        fused = {"fused": True} if self.precision.fused_adam else {}
        g_params = [p for p in self.generator.parameters() if p.requires_grad]
        if not g_params:
            raise HarnessError(f"method {cfg.method!r}: the generator has no trainable parameter")
        self.opt_g = torch.optim.Adam(g_params, lr=t.lr_g, betas=(t.beta1, t.beta2), **fused)
        self.opt_d = [torch.optim.Adam([p for p in d.parameters() if p.requires_grad], lr=t.lr_d,
                                       betas=(t.beta1, t.beta2), **fused) for d in self.discriminators]
        g_parallel = wrap_ddp(self.generator)  # N ranks: DDP (rank 0's weights to all); else G itself
        self.d_parallel: nn.ModuleList = wrap_each(self.discriminators)  # one DDP per discriminator
        self.ema = ParameterEMA(self.generator, t.ema_decay)
        self.g_forward: Callable = torch.compile(g_parallel) if self.precision.compile else g_parallel
        self.shared_text = m.text_encoder is m.damsm.text

    # ---- the iteration ---------------------------------------------------------------------------------
    def encode_text(self, batch: Batch) -> tuple[TextFeatures, TextFeatures]:
        """(conditioning features, DAMSM features) from the frozen encoders, detached."""
        with torch.no_grad(), self.precision.autocast():
            text = self.modules.text_encoder(batch.captions, batch.lengths).detach()
            damsm_text = text if self.shared_text else self.modules.damsm.text(batch.captions, batch.lengths).detach()
        return text, damsm_text

    def train_step(self, batch: Batch, noise: Tensor, iteration: int,
                   mark: Callable[[str], None] = _no_mark) -> tuple[Step, dict[str, Tensor], list[Tensor], Tensor]:
        """One iteration on a batch already on the device. Returns (step, detached fp32 terms, D totals, G total).
        ``mark(phase)`` is called after each phase (text, g_forward, d_steps, g_step) for the benchmark."""
        prec = self.precision
        text, damsm_text = self.encode_text(batch)
        mark("text")
        with prec.autocast(), per_item_draws(self.cfg.seed, iteration, batch.indices):
            output = self.g_forward(noise, text)  # draws inside G (CA's ε) are per item: rank-independent
        mark("g_forward")
        step = Step(batch=batch, text=text, damsm_text=damsm_text, noise=noise, output=output,
                    discriminators=self.d_parallel, image_encoder=self.modules.image_encoder,
                    aux=self.modules.aux, cfg=self.cfg, iteration=iteration, roll_batch=roll_batch)
        terms: dict[str, Tensor] = {}
        d_totals: list[Tensor] = []
        for i, opt in enumerate(self.opt_d):
            opt.zero_grad(set_to_none=True)
            with prec.autocast():
                d_terms = self.hooks.harness_discriminator_loss(step=step, stage=i)
            check_loss_terms(self.cfg.method, "harness_discriminator_loss", d_terms)
            total = _sum_terms(d_terms)
            total.backward()
            opt.step()
            d_totals.append(total.detach())
            for name, value in d_terms.items():
                terms[name if name not in terms else f"d{i}/{name}"] = value.detach().float()
        mark("d_steps")
        self.opt_g.zero_grad(set_to_none=True)
        with self._d_weights_frozen(), no_sync(self.d_parallel), prec.autocast():
            g_terms = self.hooks.harness_generator_loss(step=step)
        check_loss_terms(self.cfg.method, "harness_generator_loss", g_terms)
        g_total = _sum_terms(g_terms)
        g_total.backward()
        self.opt_g.step()
        self.ema.update(self.generator)
        for name, value in g_terms.items():
            terms[name if name not in terms else f"g/{name}"] = value.detach().float()
        mark("g_step")
        return step, terms, d_totals, g_total.detach()

    @contextlib.contextmanager
    def _d_weights_frozen(self):
        """During the G loss: D weights need no gradient (the reference's are discarded at the next D step)."""
        if not self.skip_d_weight_grads:
            yield
            return
        params = [p for p in self.discriminators.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    # ---- state -------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "method": self.cfg.method,
            "generator": self.generator.state_dict(),
            "generator_ema": self.ema.state_dict_for(self.generator),
            "discriminators": self.discriminators.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": [o.state_dict() for o in self.opt_d],
            "aux": aux_state(self.modules.aux),
        }

    def load_state(self, state: dict, source: str) -> None:
        from harness.core.state_dicts import load_state_strict

        load_state_strict(self.generator, state["generator"], source=f"{source} generator")
        load_state_strict(self.discriminators, state["discriminators"], source=f"{source} discriminators")
        self.ema.load_from(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        if len(state["opt_d"]) != len(self.opt_d):
            raise HarnessError(f"{source}: {len(state['opt_d'])} discriminator optimisers, the method has "
                               f"{len(self.opt_d)}")
        for opt, sd in zip(self.opt_d, state["opt_d"]):
            opt.load_state_dict(sd)
        load_aux_state(self.modules.aux, state.get("aux", {}))
        self.set_learning_rates()

    def set_learning_rates(self) -> None:
        """The config's ``train.lr_g`` / ``train.lr_d`` on every parameter group (a loaded optimiser state carries
        the rate it was saved with; a resumed run trains at the rate its config.yaml says)."""
        for opt, lr in [(self.opt_g, self.cfg.train.lr_g), *[(o, self.cfg.train.lr_d) for o in self.opt_d]]:
            for group in opt.param_groups:
                group["lr"] = lr

    def load_imported(self, state: dict, source: str) -> None:
        """Start from an ``import-checkpoint`` run made with the original's discriminators, as the original
        resumes: the saved (averaged) G as the live G and as its EMA, the Ds, fresh optimisers."""
        from harness.core.state_dicts import load_state_strict

        if "discriminators" not in state:
            raise HarnessError(f"{source}: imported without the original's discriminators, so it cannot be trained "
                               f"further; import it again with --discriminators netD0.pth,netD1.pth,...")
        load_state_strict(self.generator, state["generator"], source=f"{source} generator")
        load_state_strict(self.discriminators, state["discriminators"], source=f"{source} discriminators")
        self.ema.load_from(state["generator_ema"])


def check_loss_terms(method: str, hook: str, terms: Optional[dict[str, Tensor]]) -> None:
    """The loss contract's return value (``harness.contract.hookspecs``, ``types.Step``): at least one named term,
    each a 0-dim fp32 tensor, also under bf16 autocast. Raises HarnessError naming the method, the hook and the term."""
    if not terms:
        raise HarnessError(f"method {method!r}: {hook} returned no term")
    for name, value in terms.items():
        if not isinstance(value, Tensor) or value.dim() != 0 or value.dtype != torch.float32:
            got = f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise HarnessError(f"method {method!r}: {hook} term {name!r} is {got}; a loss term is a 0-dim fp32 tensor "
                               f"(under train.amp=bf16 too: compute it from .float() values)")


def _sum_terms(terms: dict[str, Tensor]) -> Tensor:
    values = [v.float() for v in terms.values()]
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


# ------------------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------------------
@dataclass
class _Pending:
    """Loss values of steps not yet checked/logged (kept on the device: no sync per step)."""

    steps: list[tuple[int, int, dict[str, Tensor], Tensor, Tensor]] = field(default_factory=list)
    batches: dict[int, Batch] = field(default_factory=dict)  # step: its host batch without images (keys, tokens)
    window_start: float = field(default_factory=time.perf_counter)
    window_images: int = 0


class NonFiniteLoss(HarnessError):
    """A loss term became NaN or infinite; training stopped."""


def _build_datasets(plugins: Plugins, cfg: Config, root: Path) -> tuple[TextImageDataset, TextImageDataset]:
    from harness.data.validate import check_dataset

    check_dataset(cfg.data, root, batch_size=cfg.train.batch_size, warn=False)  # the command warned already
    train_set = build_split(plugins, cfg, "train", train=True, cache_root=root)
    test_set = build_split(plugins, cfg, "test", train=False, cache_root=root)
    return train_set, test_set


def caption_words(dataset: TextImageDataset, batch: Batch) -> list[list[str]]:
    """The words of each caption of a batch (token ids when the vocabulary has no ``ixtoword``)."""
    words = getattr(dataset.vocab, "ixtoword", None)
    return [[words[i] if words is not None else str(i) for i in row[:length]]
            for row, length in zip(batch.captions.tolist(), batch.lengths.tolist())]


class TrainingLoop:
    """Runs ``GanTrainer`` over the data for ``total_steps``, with logging, sample sheets, checkpoints,
    periodic evaluation (``evaluate(step)``, a callback from ``harness.session``: training never imports the
    evaluation) and resume."""

    def __init__(self, plugins: Plugins, cfg: Config, run: RunDir, trainer: GanTrainer, train_set: TextImageDataset,
                 test_set: TextImageDataset, *, root: Path, vocab_size: int, pretrained: dict[str, Path],
                 evaluate: Optional[Callable[[int], None]] = None):
        self.plugins, self.cfg, self.run, self.trainer = plugins, cfg, run, trainer
        self.evaluate = evaluate  # periodic evaluation (every eval.every steps), given by the caller
        self.train_set, self.test_set, self.root = train_set, test_set, root
        self.vocab_size, self.pretrained = vocab_size, pretrained
        t = cfg.train
        self.batch_size = t.batch_size
        self.per_epoch = len(train_set) // t.batch_size
        if self.per_epoch == 0:
            raise HarnessError(f"the training split has {len(train_set)} items, fewer than train.batch_size="
                               f"{t.batch_size}")
        self.total_steps = t.max_steps if t.max_steps is not None else t.epochs * self.per_epoch
        local_slice(t.batch_size)  # N ranks: the global batch must split evenly (fails here, clearly)
        self.log_every = max(1, t.log_every)
        self.step, self.epoch, self.position = 0, 0, 0
        self.device = trainer.device
        self.sync_every_step = self.device.type == "cpu"  # the finite check costs nothing on the CPU
        self.pending = _Pending()
        self.tb = self._tensorboard()
        self.sheet: Optional[tuple] = None
        self._rng: Optional[dict] = None

    # ---- setup -------------------------------------------------------------------------------------------
    def _tensorboard(self) -> Optional[SummaryWriter]:
        if not self.cfg.train.tensorboard or not is_main():
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(log_dir=str(Path(self.run.path) / "tensorboard"))

    def resume(self) -> None:
        """Restore the newest checkpoint (models, optimisers, EMA, RNG, epoch and position) and drop log lines
        written after it; without a checkpoint, start from step 0."""
        found = list_checkpoints(self.run)
        if not found:
            print(f"resume: {self.run.path} has no checkpoint yet; starting from step 0", flush=True)
            self._truncate_log(0)
            return
        path, state = newest_good_checkpoint(self.run)  # a damaged newest one: the one before, with a warning
        if "imported" in state and "opt_g" not in state:  # harness import-checkpoint: the original resumes
            self.trainer.load_imported(state, str(path))
            self.epoch, self.position = int(state["epoch"]), 0
            self.step = self.epoch * self.per_epoch
            self._truncate_log(self.step)
            print(f"resume: imported {state['imported'].get('file')} (epoch {self.epoch}, step {self.step}, fresh "
                  f"optimisers)", flush=True)
            return
        self.trainer.load_state(state, str(path))
        self.step, self.epoch, self.position = int(state["step"]), int(state["epoch"]), int(state["position"])
        self._rng = state["rng"]
        self._truncate_log(self.step)
        print(f"resume: {path.name} (step {self.step}, epoch {self.epoch}, batch {self.position})", flush=True)

    def _truncate_log(self, step: int) -> None:
        from harness.core.rundir import atomic_write_text, cut_torn_tail

        if not is_main():
            return
        cut_torn_tail(self.run.log_path)  # a line torn by the interruption is kept beside the log, not dropped
        entries = [e for e in self.run.read_log() if int(e.get("step", 0)) <= step]
        atomic_write_text(self.run.log_path, "".join(json.dumps(e) + "\n" for e in entries))

    # ---- loop -------------------------------------------------------------------------------------------
    def train(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        if self.step >= self.total_steps:
            limit = (f"train.max_steps={cfg.train.max_steps}" if cfg.train.max_steps is not None
                     else f"train.epochs={cfg.train.epochs}")
            print(f"run {Path(self.run.path).name} is complete: it is at step {self.step}, and {limit} makes "
                  f"{self.total_steps} (raise it to train on)", flush=True)
            return
        if self._rng is not None:
            set_rng_state(self._rng)  # last: everything above may have drawn random numbers
        self.bar = tqdm(total=self.total_steps, initial=self.step, desc=cfg.method, unit="it", mininterval=1.0,
                        dynamic_ncols=True, file=sys.stderr, disable=not is_main())
        self.pending = _Pending()
        try:
            while self.step < self.total_steps:
                batches = epoch_batches(cfg.seed, self.epoch, len(self.train_set), self.batch_size)
                if self.position >= len(batches):
                    self.epoch, self.position = self.epoch + 1, 0
                    continue
                if hasattr(self.train_set, "set_epoch"):
                    self.train_set.set_epoch(self.epoch)
                todo = batches[self.position:]
                in_order = getattr(self.train_set, "collate_order", None)  # a TextImageDataset's
                if current().enabled and in_order is not None:  # each global batch in collate's order, then shared
                    todo = [in_order(b) for b in todo]
                loader = batch_loader(self.train_set, shard_batches(todo),
                                      self.cfg.data.num_workers, pin_memory=self.device.type == "cuda")
                for batch in loader:
                    self._iteration(batch)
                    if self.step >= self.total_steps:
                        break
                if self.position >= len(batches):
                    self.epoch, self.position = self.epoch + 1, 0
            self._flush(force_log=True)
            self._checkpoint()
            self._sample_sheet()
        finally:
            self.bar.close()
            if self.tb is not None:
                self.tb.flush()

    def _iteration(self, batch: Batch) -> None:
        cfg, trainer = self.cfg, self.trainer
        self.step += 1
        self.position += 1
        reseed_rank_streams(cfg.seed, self.step)  # N ranks: per-rank streams from (seed, step, rank)
        noise = sample_noise(cfg.seed, self.step, batch.indices, cfg.model.z_dim)
        if self.device.type == "cuda":  # pinned: the copies below do not synchronise the host
            noise = noise.pin_memory()
        noise = noise.to(self.device, non_blocking=True)
        self.pending.batches[self.step] = replace(batch, images=[])  # host tensors: name the batch of a bad step
        batch = batch.to(self.device)
        batch.images = [trainer.precision.images(x) for x in batch.images]
        step, terms, d_totals, g_total = trainer.train_step(batch, noise, self.step)
        self.pending.steps.append((self.step, self.epoch, terms, torch.stack(d_totals).sum(), g_total))
        self.pending.window_images += len(batch)
        log_now = self.step % self.log_every == 0 or self.step == self.total_steps
        logs = self._flush(force_log=False) if (log_now or self.sync_every_step) else {}
        self.plugins.pm.hook.harness_on_step_end(run=self.run, step=step, logs=logs if log_now else {})
        self.bar.update(1)
        if self.step >= self.total_steps:
            return  # the final checkpoint and sheet are written after the loop
        started = time.perf_counter()
        if cfg.train.checkpoint_every and self.step % cfg.train.checkpoint_every == 0:
            self._checkpoint()
        if cfg.train.sample_every and self.step % cfg.train.sample_every == 0:
            self._sample_sheet()
        if cfg.eval.every and self.step % cfg.eval.every == 0:
            self._evaluate()
        self.pending.window_start += time.perf_counter() - started  # images/s counts training time only

    def _flush(self, force_log: bool) -> dict[str, float]:
        """Check every pending step for non-finite terms (one host sync) and log the last one when due."""
        pend = self.pending
        if not pend.steps:
            return {}
        names = [list(p[2]) for p in pend.steps]
        flat = torch.stack([v for p in pend.steps for v in (*p[2].values(), p[3], p[4])])
        flat = average_across_ranks(flat).cpu()  # N ranks: every rank logs and checks the same means
        values, k = [], 0
        for (s, e, terms, _, _), keys in zip(pend.steps, names):
            row = flat[k:k + len(keys) + 2].tolist()
            k += len(keys) + 2
            values.append((s, e, dict(zip(keys, row[:len(keys)])), row[-2], row[-1]))
        for s, e, vals, _, _ in values:
            bad = [(n, v) for n, v in vals.items() if not math.isfinite(v)]
            if bad:
                self._stop_non_finite(s, *bad[0])
        s, e, vals, d_total, g_total = values[-1]
        due = force_log or s % self.log_every == 0 or s == self.total_steps
        if not due:
            pend.steps.clear()
            pend.batches.clear()
            return {}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        ips = pend.window_images / max(now - pend.window_start, 1e-9)
        entry = {"step": s, "epoch": e, "terms": vals, "loss_d": d_total, "loss_g": g_total,
                 "images_per_s": round(ips, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if is_main():
            self.run.append_log(entry)
        if self.tb is not None:
            for n, v in vals.items():
                self.tb.add_scalar(f"loss/{n}", v, s)
            self.tb.add_scalar("speed/images_per_s", ips, s)
        self.bar.set_postfix(loss_d=f"{d_total:.3f}", loss_g=f"{g_total:.3f}", img_s=f"{ips:.1f}", refresh=False)
        self.pending = _Pending()
        return {**vals, "loss_d": d_total, "loss_g": g_total, "images_per_s": ips}

    def _stop_non_finite(self, step: int, term: str, value: float) -> None:
        raise NonFiniteLoss(f"non-finite loss at step {step}: term {term!r} = {value}; "
                            f"{self._batch_captions(step)}training stopped ({last_good(self.run)})")

    def _batch_captions(self, step: int, shown: int = 3) -> str:
        """"the step's batch (…): <key> "<words fed>", … (and N more); " for the error line ("" when not kept)."""
        if step not in self.pending.batches:
            return ""
        batch = self.pending.batches[step]
        texts = [" ".join(words) for words in caption_words(self.train_set, batch)[:shown]]
        more = f" (and {len(batch.keys) - shown} more)" if len(batch.keys) > shown else ""
        listed = ", ".join(f'{k} "{t}"' for k, t in zip(batch.keys, texts))
        return f"the step's batch (this process's, the words fed): {listed}{more}; "

    # ---- checkpoints, sheets, evaluation ---------------------------------------------------------------------
    def _checkpoint(self) -> Path:
        self._flush(force_log=False)  # never write a checkpoint after an unchecked step
        state = self.trainer.state()
        state.update(vocab_size=self.vocab_size, epoch=self.epoch, position=self.position, rng=rng_state(),
                     pretrained={k: str(v) for k, v in self.pretrained.items()})
        return on_main(lambda: save_checkpoint(self.run, state, self.step, keep=self.cfg.train.keep_checkpoints))

    def _sample_sheet(self) -> Optional[Path]:
        """EMA generator in eval() on fixed test captions and noise; captions under the images (and a sheet of
        word-attention maps for methods that return them)."""
        from harness.train.samples import write_training_sheets

        if not is_main():
            return None
        trainer, cfg = self.trainer, self.cfg
        g = trainer.generator
        with preserved_rng(), torch.no_grad():
            if self.sheet is None:
                n = min(cfg.train.sample_count, len(self.test_set))
                if n == 0:
                    return None
                if hasattr(self.test_set, "set_epoch"):
                    self.test_set.set_epoch(0)
                batch = self.test_set.collate([self.test_set[i] for i in range(n)])
                self.sheet = (batch, caption_words(self.test_set, batch), fixed_noise(cfg.seed, n, cfg.model.z_dim))
            batch, words, noise = self.sheet
            text, _ = trainer.encode_text(batch.to(self.device))
            with trainer.ema.swapped_into(g):
                g.eval()
                try:
                    with trainer.precision.autocast():
                        out = g(noise.to(self.device), text)
                finally:
                    g.train()
        path = Path(self.run.samples) / f"step-{self.step:07d}.png"
        write_training_sheets([x.float().cpu() for x in out.images], [" ".join(w) for w in words], words,
                              [a.float().cpu() for a in out.attn] if out.attn else None, path)
        return path

    def _evaluate(self) -> None:
        if self.evaluate is None:
            return
        if self.step not in list_checkpoints(self.run):
            self._checkpoint()
        with preserved_rng():
            self.evaluate(self.step)
        self.trainer.generator.train()
        self.trainer.discriminators.train()


# ------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------
def train_method(plugins: Plugins, cfg: Config, run: RunDir, *, resume: bool, root: Path,
                 evaluate: Optional[Callable[[int], None]] = None) -> None:
    """Pretrain (cached) and train ``cfg.method`` into ``run`` (``harness train`` and ``harness run`` call this,
    through ``harness.session.train_run``). ``resume`` continues from the run's newest checkpoint. ``evaluate(step)``
    runs every ``eval.every`` steps after a checkpoint of that step (None: no periodic evaluation). A full disk
    anywhere (checkpoint, log, sample sheet, pretraining cache) stops it with one line naming the last good
    checkpoint and how to resume."""
    try:
        _train(plugins, cfg, run, resume=resume, root=root, evaluate=evaluate)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        raise HarnessError(f"disk full{where} while training run {Path(run.path).name} ({e.strerror}); "
                           f"{resume_hint(run)} once there is space") from None


def _kept_pretrained(run: RunDir) -> dict[str, Path]:
    """The run's own pretrained stages (``<run>/pretrained/``), {} when it has none to keep (runs made before the
    harness kept them, or whose copies are gone)."""
    stages = {k: Path(v) for k, v in read_pretrained(run)["stages"].items()}
    return stages if stages and all(p.is_dir() for p in stages.values()) else {}


def _train(plugins: Plugins, cfg: Config, run: RunDir, *, resume: bool, root: Path,
           evaluate: Optional[Callable[[int], None]]) -> None:
    from harness.build import build_method
    from harness.data.vocab import VOCAB_FILE, save_vocabulary
    from harness.train.pretrain import ensure_pretrained

    device = init_distributed(cfg.train.device).device  # torchrun: joins the group, cuda:LOCAL_RANK
    train_set, test_set = _build_datasets(plugins, cfg, root)
    vocab_size = len(train_set.vocab)
    pretrained = _kept_pretrained(run) if resume and list_checkpoints(run) else {}
    if pretrained and is_main():  # the encoders the checkpoint was trained with, whatever the cache holds now
        print(f"resume: pretrained stages kept from the run ({', '.join(pretrained)})", flush=True)
    if not pretrained:
        pretrained = ensure_pretrained(plugins, cfg, root, train_set, test_set, device)
        on_main(lambda: write_pretrained(run, pretrained, vocab_size), share=False)
    on_main(lambda: save_vocabulary(train_set.vocab, Path(run.path) / VOCAB_FILE), share=False)  # harness.api
    seed_everything(cfg.seed)  # after pretraining: a cache hit or miss must not change the GAN's initialisation
    modules = build_method(plugins, cfg, vocab_size, pretrained, training=True)
    trainer = GanTrainer(plugins, cfg, modules, device)
    loop = TrainingLoop(plugins, cfg, run, trainer, train_set, test_set, root=root, vocab_size=vocab_size,
                        pretrained=pretrained, evaluate=evaluate)
    if resume:
        loop.resume()
    at = f" from step {loop.step}" if loop.step else ""
    print(f"training {cfg.method} on {cfg.data.name} ({device}, {'bf16' if trainer.precision.amp else 'fp32'}): "
          f"{loop.total_steps} steps{at}, batch {cfg.train.batch_size}, {loop.per_epoch} batches/epoch", flush=True)
    loop.train()
