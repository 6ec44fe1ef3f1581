"""torchrun / DDP helpers that degrade to a plain single process (CPU tests, one GPU).

There is one code path: a single process is world size 1 with rank 0, uses the
same sampler and the same rank-0-only writes as a multi-GPU run.

Two deadlines. The training collectives (DDP's gradient all-reduce, metric
averaging) run on a group with `trainer.dist_timeout_s`, which catches a rank
that hangs inside a step. Rank 0 alone does the slow one-sided work (validating
the input, evaluating, writing checkpoints); the other ranks wait for it in
`wait_for_main` and receive its results through `share_from_main` /
`gather_to_main`, on a gloo group with `NO_DEADLINE`, so a long evaluation never
trips the training timeout. Joining (the rendezvous) has no short deadline either.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: Deadline of the rank-0 waits: a week, i.e. none in practice. A rank 0 that dies
#: does not leave the others waiting: torchrun stops every worker when one fails.
NO_DEADLINE = datetime.timedelta(days=7)

_main_group: Any = None  # the gloo group of the rank-0 waits (None in a single process)
_train_group: Any = None  # the group of the training collectives, with trainer.dist_timeout_s


def setup(device: str = "auto", timeout_s: float | None = None) -> DistInfo:
    """Read torchrun's environment, pick the device, and join the process group if needed.

    `timeout_s` is the deadline of the training collectives (gradient all-reduce,
    metric averaging); the waits for rank 0 have none (see `wait_for_main`).
    """
    global _main_group, _train_group
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        from sldata.errors import UserError

        raise UserError("trainer.device is cuda but no CUDA device is available (use auto or cpu)")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=NO_DEADLINE)
    if world > 1 and _main_group is None:
        _main_group = dist.new_group(backend="gloo", timeout=NO_DEADLINE)
        timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)
        _train_group = dist.new_group(timeout=timeout)
    return DistInfo(rank, local, world, dev)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """`trainer.threads` CPU threads for the block (tiny CPU models run much faster on one), then as before."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def teardown() -> None:
    global _main_group, _train_group
    _main_group = _train_group = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return _main_group is not None and dist.is_available() and dist.is_initialized()


def wait_for_main() -> None:
    """Every rank returns once all got here; the others may wait for rank 0 as long as it takes."""
    if _active():
        dist.barrier(group=_main_group)


def share_from_main(value: Any, info: DistInfo) -> Any:
    """Rank 0's `value` on every rank (any picklable object); no deadline, like `wait_for_main`."""
    if not info.distributed or not _active():
        return value
    box = [value if info.is_main else None]
    dist.broadcast_object_list(box, src=0, group=_main_group)
    return box[0]


def gather_to_main(value: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's `value`, in rank order, on rank 0 (None elsewhere); `[value]` in one process."""
    if not info.distributed or not _active():
        return [value]
    out: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(value, out, dst=0, group=_main_group)
    return out


def barrier() -> None:
    """A barrier with the training deadline (for ranks doing the same work)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=_train_group)


def mean_across(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged scalars over ranks (identity in a single process)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, group=_train_group)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))


def wrap_model(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> torch.nn.Module:
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.local_rank] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters,
                                   process_group=_train_group)


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start mid-epoch and tags each index with its epoch.

    Yields `(index, epoch)` so the dataset wrapper can seed per-sample randomness;
    `start` skips that many of this rank's indices (the data position of a resume)
    without loading them.
    """

    def __init__(self, dataset: Dataset, info: DistInfo, shuffle: bool, seed: int, drop_last: bool = True):
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start:]
        return iter([(i, self.epoch) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
