"""Which queries each training step sees: a function of ``(seed, epoch)`` only.

Epoch ``e`` visits the training queries in ``randperm(n, generator=seed + e)`` order, rank ``r``
of ``W`` taking every W-th batch (the epoch's batches padded by wrap-around to a multiple of W,
so ranks step together). A resumed run therefore skips the batches its epoch had already done
and sees exactly what an uninterrupted run would (docs/design.md section 11). Batches come from a
DataLoader with ``num_workers`` processes that read the store lazily, ahead of the step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches of query indices (the last one may be short)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


class RankBatches:
    """The batches one rank trains on from ``start`` to ``total`` steps (a DataLoader batch_sampler).

    Epoch ``e`` takes :func:`batch_order` ``(n, batch_size, seed, e)``, padded by wrapping around
    to ``steps_per_epoch * world`` batches (as DistributedSampler pads) so that every rank does
    the same number of steps; rank ``r`` takes every ``world``-th batch from ``r``. A run resumed
    at step ``start`` skips the batches of its epoch that were already done. Each item is a list
    of ``(query index, epoch)`` pairs: the epoch keys the dataset's frame jitter.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, world: int, rank: int, start: int, total: int
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.world, self.rank, self.start, self.total = world, rank, start, total
        self.steps_per_epoch = math.ceil(math.ceil(n / batch_size) / world)

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while step < self.total:
            epoch, position = divmod(step, self.steps_per_epoch)
            order = batch_order(self.n, self.batch_size, self.seed, epoch)
            order = [order[i % len(order)] for i in range(self.steps_per_epoch * self.world)]
            for indices in order[self.rank :: self.world][position:]:
                if step >= self.total:
                    return
                yield [(i, epoch) for i in indices]  # the epoch keys the frame jitter
                step += 1


def batch_loader(
    dataset: Any,
    batches: RankBatches,
    num_workers: int,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The DataLoader of training: ``batches`` of ``dataset`` items, collated.

    With ``num_workers > 0`` the workers (each opening its own store) read ahead of the step,
    4 batches each.
    """
    from stvg.features.dataset import collate

    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        prefetch_factor=4 if num_workers > 0 else None,
        pin_memory=pin_memory,
    )


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (other values as they are)."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }
