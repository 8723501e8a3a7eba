"""Process groups for ``torchrun``: device and backend per rank, DDP or FSDP2 wrapping, rank-0
helpers, all-reduce of scalars, and agreeing on failures so that no rank waits for a dead peer.

One process (no ``WORLD_SIZE`` in the environment) needs none of this and pays nothing for it.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from zoo.errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_VALUES = "auto, cpu, cuda, cuda:N"


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """This process's place in the job that ``torchrun`` describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def select_device(name: str, info: DistInfo, cuda_count: int) -> torch.device:
    """The device of this rank for ``train.device = name`` given ``cuda_count`` visible GPUs.

    ``auto`` and a bare ``cuda`` mean ``cuda:LOCAL_RANK``, so that the ranks of one machine use
    one GPU each; ``cuda:N`` is taken as given.
    """
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if name != "auto" and (dev is None or dev.type not in ("cpu", "cuda")):
        raise ConfigError(f"train.device = {name!r} is not a device; allowed values: {DEVICE_VALUES}")
    if name == "auto":
        return torch.device("cuda", info.local_rank) if cuda_count > 0 else torch.device("cpu")
    assert dev is not None
    if dev.type == "cpu":
        return torch.device("cpu")
    if cuda_count == 0:
        raise ConfigError(f"train.device = {name!r} but CUDA is not available here")
    index = info.local_rank if dev.index is None else dev.index
    if index >= cuda_count:
        why = f"local rank {info.local_rank}" if dev.index is None else name
        raise ConfigError(f"train.device = {name!r}: {why} needs GPU {index}, but {cuda_count} GPU(s) are visible")
    return torch.device("cuda", index)


def backend_for(device: torch.device) -> str:
    """gloo on CPU; on CUDA, NCCL for CUDA tensors and gloo for the CPU tensors the trainer reduces
    (step counters, metrics, RNG states), which plain NCCL cannot serve."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def ddp_device_ids(device: torch.device) -> list[int] | None:
    """DDP's ``device_ids``: this rank's GPU (``select_device`` always gives an index), None on CPU."""
    return [device.index] if device.type == "cuda" else None


def init(info: DistInfo, device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group of ``info`` (nothing for one process) with ``device`` current."""
    if not info.enabled:
        return info
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=timeout_s))
    log.debug("rank %d of %d joined the process group", info.rank, info.world_size)
    return info


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def finish(info: DistInfo, seconds: float = 0.2) -> None:
    """After the last step, before the trainer is released: a barrier, then the GIL given to gloo's worker
    thread long enough to free the tensors of the finished collectives (the barrier's included). The DDP
    reducer's destructor joins that thread while holding the GIL, so a free still pending then deadlocks
    the rank after its run finished (seen: the worker in ``~AsyncBarrierWork`` waiting for the GIL, the
    main thread in ``~ProcessGroupGloo`` joining it)."""
    if info.enabled:
        dist.barrier()
        time.sleep(seconds)


def all_reduce(values: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(values, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return values


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """The mean of each value over the ranks (every rank holds the same keys); ``values`` alone when
    there is one process."""
    if not info.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    all_reduce(t, info, "sum")
    return {k: float(v) / info.world_size for k, v in zip(keys, t, strict=True)}


def all_gather_bytes(data: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Gather one uint8 tensor of the same length from every rank (no pickling)."""
    if not info.enabled:
        return [data]
    out = [torch.empty_like(data) for _ in range(info.world_size)]
    dist.all_gather(out, data)
    return out


def all_gather_blobs(data: bytes, info: DistInfo) -> list[bytes]:
    """Gather a byte string of any length from every rank (padded with spaces to the longest:
    meant for JSON, which ignores trailing whitespace)."""
    if not info.enabled:
        return [data]
    size = all_reduce(torch.tensor([len(data)], dtype=torch.int64), info, "max")
    padded = torch.frombuffer(bytearray(data.ljust(int(size[0]), b" ")), dtype=torch.uint8)
    return [bytes(t.numpy().tobytes()) for t in all_gather_bytes(padded, info)]


def failed_ranks(failed: bool, info: DistInfo) -> list[int]:
    """The ranks that report ``failed``, known to every rank (one all-reduce of ``world`` flags).

    Every rank calls it at the same point, so a rank that hit an error tells its peers instead of
    leaving them blocked in the next collective until the timeout.
    """
    if not info.enabled:
        return [info.rank] if failed else []
    flags = torch.zeros(info.world_size, dtype=torch.int32)
    flags[info.rank] = int(failed)
    dist.all_reduce(flags, op=dist.ReduceOp.SUM)
    return [r for r in range(info.world_size) if flags[r]]


def wrap(model: nn.Module, info: DistInfo, strategy: str, device: torch.device,
         find_unused: bool = False) -> nn.Module:
    """DDP, or FSDP2 (``fully_shard`` per backbone layer, then the whole model). ``find_unused``: some
    parameters get no gradient in some steps (a mixture's heads of the parts that did not run)."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in getattr(model.backbone, "layers", []):
            fully_shard(layer)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=ddp_device_ids(device), find_unused_parameters=find_unused)
