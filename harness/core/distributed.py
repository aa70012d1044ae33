"""Several processes, one model: ``torchrun --nproc_per_node N -m harness train|run ...``.

Everything the training engine and the evaluation loop need to run on N ranks lives here, so they call a few
functions and stay the same code for one process (every function is a no-op or the identity when
``WORLD_SIZE`` is unset or 1).

Process group: ``gloo`` on a CPU-only machine; ``cpu:gloo,cuda:nccl`` where CUDA is available (CUDA tensors go
through NCCL, CPU tensors through gloo), each rank on ``cuda:LOCAL_RANK``. Python objects (a run directory,
metric states, records) always travel through a gloo group.

Training (results independent of the number of ranks):

* ``train.batch_size`` is the **global** batch; each step's item indices (``harness.core.seed.epoch_batches``)
  are split into N contiguous equal slices, rank r loading slice r (``shard_batches``);
* an item's caption choice, subsample, crop and flip come from ``(seed, epoch, item index)`` (the data set),
  and its noise z from ``(seed, step, item index)`` (``harness.core.seed.sample_noise``), so a sample is the
  same whichever rank draws it; DDP averages the gradients over ranks, so a loss that is a mean of per-sample
  terms gives the gradient of the global batch's mean;
* what the generator draws inside (conditioning augmentation ε) comes from ``(seed, step, item index)`` too
  (``harness.nn.item_noise.per_item_draws`` around the generator forward);
* what is still drawn from the global generators (dropout, a plugin's own ``torch.randn``) comes from per-rank
  streams reseeded each step from ``(seed, step, rank)`` (``reseed_rank_streams``): different on each rank,
  reproducible, and independent of checkpoints (a resumed distributed run continues the same way);
* batch-level terms (BatchNorm statistics, the "wrong" pairs of the matching-aware D loss, the DAMSM
  contrastive terms) see the rank's slice only, unless ``train.sync_bn`` (SyncBatchNorm; on the CPU this
  module's ``CpuSyncBatchNorm``) makes BatchNorm use the global batch's statistics, or a loss pairs items
  through ``Step.roll_batch`` (``roll_batch``: the next item of the global batch, across ranks); each global
  batch is put in caption-length order before it is shared out, so rank r's share is rows r·B/N … of the batch
  one process would train on;
* only rank 0 writes checkpoints, sample sheets, logs and records (``is_main``; ``on_main`` waits for it).

Evaluation: the generation batches are split into N contiguous blocks (no padding: blocks may differ by one
batch); each rank generates and extracts features for its block, every metric's per-batch state is gathered
on rank 0 in global batch order (``finish_metrics``), rank 0 computes the numbers and sends them to every rank.
A metric class declares its per-batch state with a class attribute ``distributed_state`` (names of lists,
dicts of lists, or objects that declare their own), so a 2-rank evaluation equals a 1-rank one exactly.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from harness.config.rules import world_size
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.evaluation.metrics.interface import MetricResult, StreamingMetric

T = TypeVar("T")
_TIMEOUT = datetime.timedelta(minutes=30)  # rank 0 may pretrain DAMSM or build real features while others wait


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among ``world_size`` processes, its local rank on the machine
    (= its GPU index), and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_INFO: Optional[DistInfo] = None
_OBJECT_GROUP: Any = None  # gloo group for object collectives


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise HarnessError(f"${name}={os.environ[name]!r} is not an integer (set by torchrun)") from None


def launched_distributed() -> bool:
    """True when started by torchrun (or by hand) with ``WORLD_SIZE`` > 1."""
    return world_size() > 1


def _device_for(name: str, local_rank: int, distributed: bool) -> torch.device:
    from harness.core.runtime import resolve_device

    device = resolve_device(name)
    if distributed and device.type == "cuda" and name in ("auto", "cuda"):
        if local_rank >= torch.cuda.device_count():
            raise HarnessError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} CUDA "
                               f"device(s): use --nproc_per_node {torch.cuda.device_count()} or fewer")
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str = "auto", *, quiet: bool = True) -> DistInfo:
    """Join the process group that torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``) once, and return this rank's ``DistInfo``; a single process gets rank 0 of
    1 on ``train.device``. Later calls return the same group (the device is re-resolved for ``device``).
    With ``quiet``, ranks other than 0 print nothing on stdout (errors still reach stderr)."""
    global _INFO, _OBJECT_GROUP
    distributed = launched_distributed() or (dist.is_available() and dist.is_initialized())
    if not distributed:
        _INFO = DistInfo(device=_device_for(device, 0, False))
        return _INFO
    if not dist.is_available():
        raise HarnessError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = _env_int("RANK", 0), world_size()
    local_rank = _env_int("LOCAL_RANK", rank)
    dev = _device_for(device, local_rank, True)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise HarnessError(f"WORLD_SIZE={world} but ${var} is not set: start with torchrun "
                                   f"--nproc_per_node N -m harness ...")
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=_TIMEOUT)
        # leave the group before the interpreter tears down: a gloo group still alive at exit can abort the
        # process ("terminate called without an active exception") after all work is done
        atexit.register(_leave_group)
    if _OBJECT_GROUP is None:
        backend = str(dist.get_backend())
        _OBJECT_GROUP = dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo", timeout=_TIMEOUT)
    _INFO = DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)
    if quiet and rank != 0 and not isinstance(sys.stdout, _Silent):
        sys.stdout = _Silent()
    return _INFO


def leave_group(*, wait: bool = False) -> None:
    """Leave the process group ``init_distributed`` joined (no-op in a single process). With ``wait``, first wait
    up to a minute for the other ranks to finish too (gloo's monitored barrier), so that no rank tears its group
    down while another is still in it (that can abort a rank after its work is done: "terminate called without
    an active exception"). Also registered to run at exit, without waiting."""
    global _OBJECT_GROUP
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait and _OBJECT_GROUP is not None:
        try:
            dist.monitored_barrier(group=_OBJECT_GROUP, timeout=datetime.timedelta(seconds=60))
        except RuntimeError:  # a rank that failed or left: leave anyway
            pass
    _OBJECT_GROUP = None
    dist.destroy_process_group()


def _leave_group() -> None:
    leave_group(wait=False)


class _Silent:
    """stdout of ranks other than 0: the user sees each line once."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


def current() -> DistInfo:
    """This process's ``DistInfo`` (rank 0 of 1 before ``init_distributed`` and in a single process)."""
    if _INFO is not None:
        return _INFO
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())
    return DistInfo()


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files."""
    return current().is_main


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if current().enabled:
        dist.barrier(group=_OBJECT_GROUP)


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (pickled through gloo)."""
    if not current().enabled:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_OBJECT_GROUP)
    return box[0]


def on_main(build: Callable[[], T], *, share: bool = True) -> Optional[T]:
    """Run ``build`` on rank 0 only (creating a run directory, writing a checkpoint); the other ranks wait for
    it and get its result when ``share`` (it must pickle), else None."""
    init_distributed_from_env()
    info = current()
    result = build() if info.is_main else None
    if not info.enabled:
        return result
    if share:
        return broadcast_object(result)
    barrier()
    return result


def init_distributed_from_env() -> DistInfo:
    """``init_distributed`` when launched by torchrun and not yet done (the device is set again by training)."""
    if _INFO is None and launched_distributed():
        return init_distributed("auto")
    return current()


# ------------------------------------------------------------------------------------------------------
# Training: sharding by global sample index, DDP, SyncBatchNorm, per-rank random streams
# ------------------------------------------------------------------------------------------------------
def local_slice(global_size: int, info: Optional[DistInfo] = None) -> slice:
    """The rows of a global batch of ``global_size`` that this rank takes: N contiguous equal slices."""
    info = info or current()
    if global_size % info.world_size:
        raise HarnessError(f"train.batch_size={global_size} is the global batch: it must be divisible by the "
                           f"{info.world_size} ranks (e.g. train.batch_size="
                           f"{(global_size // info.world_size + 1) * info.world_size})")
    per = global_size // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)


def shard_batches(batches: Sequence[Sequence[int]], info: Optional[DistInfo] = None) -> list[list[int]]:
    """Each global batch of item indices → this rank's slice of it (the identity in a single process)."""
    info = info or current()
    if not info.enabled:
        return [list(b) for b in batches]
    return [list(b)[local_slice(len(b), info)] for b in batches]


def reseed_rank_streams(seed: int, step: int, info: Optional[DistInfo] = None) -> None:
    """On N > 1 ranks: reseed python, numpy and torch (CPU and CUDA) global generators from (seed, step, rank),
    so the draws inside the networks differ between ranks and do not depend on what ran before. A no-op in a
    single process (whose global streams are saved in and restored from checkpoints)."""
    info = info or current()
    if not info.enabled:
        return
    from harness.core.seed import rank_stream_seed, seed_everything

    seed_everything(rank_stream_seed(seed, step, info.rank))


def roll_batch(x: Tensor, info: Optional[DistInfo] = None) -> Tensor:
    """Rows of ``x`` (B×…, one per item of this rank's share of the global batch) each replaced by the next item's
    row of the global batch, the last item's by the first's: ``torch.roll(x, -1, 0)`` in a single process; on N
    ranks the global rows are gathered (``torch.distributed.nn.functional.all_gather``: differentiable, its
    backward sums every rank's gradient of the gathered rows), rolled, and this rank's share returned, so N
    processes pair items as one process does. Gathered in fp32 (gloo lacks some reduced types)."""
    info = info or current()
    if not info.enabled:
        return torch.roll(x, shifts=-1, dims=0)
    from torch.distributed.nn.functional import all_gather

    n = x.shape[0]
    rows = torch.cat(all_gather(x.float().contiguous()))
    return torch.roll(rows, shifts=-1, dims=0)[info.rank * n:(info.rank + 1) * n].to(x.dtype)


class ForwardingDDP(nn.parallel.DistributedDataParallel):
    """DDP that also answers the wrapped module's attributes (``disc.COND_DNET(...)`` in a D loss works
    through the wrapper; parameters used outside ``forward`` are still reduced: their gradient hooks fire)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not wrapped yet (inside DDP's constructor)
                raise
            return getattr(self.module, name)


def wrap_ddp(module: nn.Module, info: Optional[DistInfo] = None, *,
             find_unused_parameters: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel on N > 1 ranks (``module`` itself in a single process, or when it
    has no trainable parameter). The wrapper shares the parameters: optimisers, EMA and state dicts keep using
    ``module``. Rank 0's parameters and buffers are copied to every rank here."""
    info = info or current()
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return ForwardingDDP(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def wrap_each(modules: nn.ModuleList, info: Optional[DistInfo] = None) -> nn.ModuleList:
    """One DDP per module (one per discriminator: each has its own loss, backward and optimiser)."""
    info = info or current()
    if not info.enabled:
        return modules
    return nn.ModuleList(wrap_ddp(m, info) for m in modules)


@contextlib.contextmanager
def no_sync(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Backward passes inside the block do not all-reduce the gradients of these DDP modules (the generator
    step runs the discriminators with frozen weights: nothing to reduce, and DDP must not wait for it)."""
    with contextlib.ExitStack() as stack:
        for m in modules:
            if isinstance(m, nn.parallel.DistributedDataParallel):
                stack.enter_context(m.no_sync())
        yield


class _AllReduceSum(torch.autograd.Function):
    """Σ over ranks, differentiable: every rank's loss depends on the sum, so the gradient of the sum is the
    sum over ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on CPU ranks (torch's SyncBatchNorm takes CUDA tensors only).

    In training, per channel: sums of x and x² and the count are all-reduced (differentiably: the backward
    all-reduces their gradients), μ = Σx/n, σ² = Σx²/n − μ² (biased, for the normalisation; running_var gets
    the unbiased n/(n−1)·σ²). In eval, or in a single process, it is plain BatchNorm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and current().enabled):
            return super().forward(input)
        self._check_input_dim(input)
        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        x = input.float()
        local = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_tensor([x.numel() / c])])
        total = _AllReduceSum.apply(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp(min=0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp(min=1)), alpha=m)
        shape = [1, c] + [1] * (input.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def convert_sync_bn(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``module`` → SyncBatchNorm (CUDA) or ``CpuSyncBatchNorm`` (CPU), keeping parameters
    and running statistics (``train.sync_bn``). Returns the module (a new object when ``module`` is itself a
    BatchNorm). State dict keys do not change."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        out = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        return out
    for name, child in module.named_children():
        new = convert_sync_bn(child, device)
        if new is not child:
            module.add_module(name, new)
    return module


def average_across_ranks(values: Tensor) -> Tensor:
    """The mean over ranks of a tensor of loss values (for logging and the non-finite check: every rank then
    sees the same numbers and stops together)."""
    if not current().enabled:
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / current().world_size


# ------------------------------------------------------------------------------------------------------
# Evaluation: contiguous blocks of generation batches, metric states gathered on rank 0
# ------------------------------------------------------------------------------------------------------
def owned_batches(num_batches: int, info: Optional[DistInfo] = None) -> range:
    """The generation batches this rank evaluates: a contiguous block (sizes differ by at most one; a rank may
    get none). Blocks in rank order are the batches in order, so gathered states concatenate in order."""
    info = info or current()
    lo = info.rank * num_batches // info.world_size
    hi = (info.rank + 1) * num_batches // info.world_size
    return range(lo, hi)


@contextlib.contextmanager
def batch_rng(seed: int, index: int, device: torch.device) -> Iterator[None]:
    """Inside the block the global torch generators (CPU and ``device``) are seeded from (seed, batch index),
    so what a generator draws internally (conditioning augmentation ε) is the same on whichever rank runs the
    batch; the generators are restored afterwards."""
    from harness.core.seed import rank_stream_seed

    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(rank_stream_seed(seed, index, -1))
        yield


def _stateful_objects(computers: Iterable[StreamingMetric]) -> list[Any]:
    """Every object holding per-batch state, found through ``distributed_state`` declarations (each once)."""
    out: list[Any] = []
    seen: set[int] = set()

    def visit(obj: object) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        names = getattr(type(obj), "distributed_state", None)
        if names is None:
            raise HarnessError(f"{type(obj).__name__} cannot be evaluated on {current().world_size} ranks: its "
                               f"class does not declare `distributed_state` (its per-batch state)")
        out.append(obj)
        for n in names:
            value = getattr(obj, n)
            if getattr(type(value), "distributed_state", None) is not None:
                visit(value)

    for c in computers:
        visit(c)
    return out


def _concat(parts: list[Any]) -> Any:
    """Per-rank states (in rank order) → one: lists concatenated, dicts of lists concatenated per key."""
    first = parts[0]
    if isinstance(first, list):
        return [x for p in parts for x in p]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for p in parts for k in p))
        return {k: _concat([p.get(k, []) for p in parts]) for k in keys}
    raise HarnessError(f"distributed_state must name lists or dicts of lists, got {type(first).__name__}")


def gather_metric_states(computers: Iterable[StreamingMetric]) -> None:
    """Gather every rank's per-batch metric state on rank 0, in batch order (rank 0's objects then hold the
    whole evaluation's state; the others' are left as they are)."""
    info = current()
    if not info.enabled:
        return
    objects = _stateful_objects(computers)
    local = [{n: getattr(o, n) for n in type(o).distributed_state if not _declares(getattr(o, n))}
             for o in objects]
    box: Optional[list] = [None] * info.world_size if info.is_main else None
    dist.gather_object(local, box, dst=0, group=_OBJECT_GROUP)
    if info.is_main:
        for i, o in enumerate(objects):
            for n in local[i]:
                setattr(o, n, _concat([rank_states[i][n] for rank_states in box]))


def _declares(value: object) -> bool:
    return getattr(type(value), "distributed_state", None) is not None


def finish_metrics(computers: Sequence[StreamingMetric]) -> list[MetricResult]:
    """``[r for c in computers for r in c.finish()]`` computed once, on rank 0, from the gathered states, and
    handed to every rank (a single process just finishes)."""
    if not current().enabled:
        return [r for c in computers for r in c.finish()]
    gather_metric_states(computers)
    results = [r for c in computers for r in c.finish()] if is_main() else None
    return broadcast_object(results)
