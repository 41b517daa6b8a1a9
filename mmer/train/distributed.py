"""Data-parallel training under ``torchrun``: process group, rank-split batches, gathered loss.

``torchrun --nproc_per_node N train.py --config ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their environment
(``--nnodes`` multiplies them across machines). :func:`init_from_env` joins the process
group from that environment (NCCL on CUDA, gloo on the CPU); without it (a plain
``python train.py``) nothing is initialised and :func:`context` says rank 0 of 1, so the
single-process path is untouched.

Same global batch as one process: every rank draws the same seeded order of global
batches (the loader of :func:`mmer.inputs.datasets.train_loader`, with its own generator),
and :func:`shard_loader` gives rank r the r-th contiguous part of each batch. The loss
then runs on the batch of ALL ranks: :func:`gather_output` concatenates every rank's
embeddings, logits and targets with gradient (as pytorch-metric-learning's distributed
wrappers do), so the miner sees every rank's clips and the loss value equals the
single-process one. Each rank's backward only reaches its own clips; its gradient is
scaled by the world size so that DDP's gradient *average* equals the single-process
gradient of the global loss.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from mmer.losses import EmotionLoss
from mmer.models.heads import ModelOutput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank of world_size (0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics, TensorBoard events and reports."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (a no-op otherwise).

    `device`: the config's ``train.device``; CUDA (or ``auto`` with a GPU) means NCCL and
    ``cuda:LOCAL_RANK``, anything else gloo."""
    if not launched_by_torchrun() or dist.is_initialized():
        return context()
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    ctx = context()
    log.info("rank %d of %d (local %d), backend %s", ctx.rank, ctx.world_size, local,
             dist.get_backend())
    return ctx


def context() -> DistContext:
    """The process group's view of this process (rank 0 of 1 without one)."""
    if not dist.is_available() or not dist.is_initialized():
        return DistContext()
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if context().enabled:
        dist.barrier()


def local_device(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA device under torchrun; `device` otherwise."""
    if device.type == "cuda" and context().enabled:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when distributed (itself otherwise).

    On CUDA, batch norms become SyncBatchNorm so their statistics cover the global batch;
    on the CPU (gloo) SyncBatchNorm does not run and each rank normalises its own part."""
    if not context().enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (whose state_dict has no ``module.`` prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardedBatches(Sampler[list[int]]):
    """Rank `rank`'s contiguous part of every batch of `batches` (a batch sampler).

    Parts differ by at most one clip. A last batch with fewer clips than ranks cannot be
    split (a rank would get none) and is dropped, with a warning."""

    def __init__(self, batches: Sampler[list[int]], rank: int, world_size: int) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            batch = list(batch)
            if len(batch) < self.world_size:
                log.warning("dropping a last batch of %d clips: fewer than %d ranks",
                            len(batch), self.world_size)
                continue
            yield part(batch, self.rank, self.world_size)

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def part(items: list, rank: int, world_size: int) -> list:
    """The `rank`-th of `world_size` contiguous, near-equal parts of `items`."""
    base, extra = divmod(len(items), world_size)
    start = rank * base + min(rank, extra)
    return items[start:start + base + (rank < extra)]


def shard_loader(loader: DataLoader, ctx: DistContext) -> DataLoader:
    """`loader` with each batch cut to rank ``ctx.rank``'s part (`loader` itself on one rank).

    The new loader shares `loader`'s generator, so it draws the same base seed and then
    the same sampler order as `loader` would have: the global batches are identical."""
    if not ctx.enabled:
        return loader
    return DataLoader(loader.dataset, batch_sampler=ShardedBatches(loader.batch_sampler, ctx.rank,
                                                                   ctx.world_size),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
                      generator=loader.generator)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather of (n_r, ...) tensors of any n_r; backward keeps this rank's slice,
    times the world size (DDP then averages the ranks' gradients)."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        width = max(sizes)
        padded = x.new_zeros((width, *x.shape[1:]))
        padded[:len(x)] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]] * len(ctx.sizes), None, None


def all_sizes(n: int, device: torch.device) -> list[int]:
    """Every rank's `n`, in rank order."""
    ctx = context()
    mine = torch.tensor([n], device=device)
    parts = [torch.zeros_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(parts, mine)
    return [int(p) for p in parts]


def gather(x: Tensor, sizes: list[int]) -> Tensor:
    """(sum(sizes), ...) concatenation of every rank's (sizes[r], ...) `x`, with gradient."""
    return _GatherWithGrad.apply(x, sizes, context().rank)


def gather_output(output: ModelOutput, sizes: list[int]) -> ModelOutput:
    return ModelOutput(gather(output.embedding, sizes), gather(output.logits, sizes),
                       {k: gather(v, sizes) for k, v in output.extra_logits.items()},
                       [gather_output(m, sizes) for m in output.members])


class GatheredLoss(nn.Module):
    """`loss` on the outputs and targets of every rank's clips (itself on one rank).

    Given triplets (TripletDataset batches: a rank's 3b items are b anchors, b positives,
    b negatives) are moved to their place in the gathered batch; mixup's permutation
    likewise (each rank mixes within its own part)."""

    def __init__(self, loss: EmotionLoss) -> None:
        super().__init__()
        self.loss = loss
        self.extra_weights = loss.extra_weights

    def forward(self, output: ModelOutput, targets: Mapping[str, Tensor], *,
                indices_tuple: tuple[Tensor, Tensor, Tensor] | None = None,
                mix: tuple[float, Tensor] | None = None) -> dict[str, Tensor]:
        if not context().enabled:
            return self.loss(output, targets, indices_tuple=indices_tuple, mix=mix)
        labels = targets["label"]
        sizes = all_sizes(len(labels), labels.device)
        offset = sum(sizes[:context().rank])
        if indices_tuple is not None:
            indices_tuple = tuple(gather((i + offset), sizes_of(sizes, len(labels), len(i)))
                                  for i in indices_tuple)
        if mix is not None:
            mix = (mix[0], gather(mix[1] + offset, sizes))
        gathered = {k: gather(v, sizes) for k, v in targets.items()}
        return self.loss(gather_output(output, sizes), gathered, indices_tuple=indices_tuple, mix=mix)


def sizes_of(sizes: list[int], n_items: int, n_index: int) -> list[int]:
    """Per-rank lengths of an index tensor that has `n_index` entries per `n_items` items."""
    return [s * n_index // n_items for s in sizes]
