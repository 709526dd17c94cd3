"""Data parallelism for the reference trainer: torchrun processes over gloo on the CPU.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process draws its own share of each
batch and the processes average their gradients before the optimizer step, so they
keep identical weights; without it everything here is a no-op. Depends on torch
only; it must not depend on the training loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank and the number of processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and prints progress."""
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun process group (gloo) if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def average_gradients(model: torch.nn.Module, dist_info: Dist) -> None:
    """Average every parameter's gradient over the processes (in place)."""
    if dist_info.world == 1:
        return
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist_info.world
