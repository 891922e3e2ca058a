"""One i-CTRL run over N processes (``torchrun --nproc_per_node N … --distributed``): NCCL on GPUs,
gloo on CPU. Every rate term couples all samples of a batch, so averaging per-process losses (plain
DDP) would optimise another objective than the paper's large batches; here each process takes a
shard of every batch and of the replay, the features are gathered **with gradient** before any rate
term, mean or sum (:func:`gather`), and so every process computes the loss of the whole batch.

Gradients. Each process differentiates that same global loss with respect to its own copy of the
parameters; the all-gather's backward sums, over the N processes, the gradient each one sends to a
shard's features, so a process holds N times the gradient through its own shard. Averaging the
parameter gradients over processes (:func:`average_gradients`) therefore gives exactly the gradient
of one process on the whole batch, and with the same optimiser state every process takes the same
step: the parameters stay identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a distributed run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Distributed | None:
    """The run that ``torchrun`` started this process in (its RANK / WORLD_SIZE / LOCAL_RANK), or None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    return Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def initialise(run: Distributed, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU), once."""
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(run.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not active() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def gather(t: Tensor) -> Tensor:
    """The rows of every process's ``t``, rank by rank, with gradient to each process's own rows
    (``torch.distributed.nn.functional.all_gather``); every process passes the same shape."""
    from torch.distributed.nn.functional import all_gather  # only where torch was built with distributed support

    if not active():
        return t
    if not t.requires_grad:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)
    return torch.cat(all_gather(t))


def gather_rows(t: Tensor) -> Tensor:
    """Rows of different counts from every process (no gradient), rank by rank: padded to the largest
    count for the collective, then trimmed."""
    if not active():
        return t
    counts = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, torch.tensor([len(t)], device=t.device))
    top = int(max(c.item() for c in counts))
    padded = torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[:len(t)] = t
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:int(c.item())] for p, c in zip(parts, counts)])


def average_gradients(params) -> None:
    """Each parameter's gradient averaged over the processes (see the module docstring)."""
    if not active():
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def shard(t: Tensor) -> Tensor:
    """This process's share of rows ``rank::world_size`` of ``t``, the same count on every process (the
    rows that do not divide evenly are left out on all of them)."""
    if not active():
        return t
    world, rank = dist.get_world_size(), dist.get_rank()
    usable = (len(t) // world) * world
    return t[:usable][rank::world]


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(value):
    """Rank 0's ``value`` (plain Python data, pickled in memory only) on every process."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_equal(value: str) -> list[str]:
    """``value`` (a string, e.g. a hash) of every process, rank by rank."""
    if not active():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values
