"""Random generator states of every rank, for checkpoints: torch CPU and CUDA states as uint8
tensors (``rng.safetensors``, ``torch_cpu.rankR`` / ``torch_cuda.rankR``), numpy and python
states as JSON (``trainer.json`` ``rng.rankR``). Nothing is pickled."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import torch

from zoo.train import distributed
from zoo.train.distributed import DistInfo


def seed_fresh(seed: int, rank: int) -> None:
    """The generators of a fresh start (after the model is built with ``seed`` on every rank):
    dropout streams differ per rank; python's and numpy's global generators, which a plugin may
    use, are seeded too (and saved and restored like torch's)."""
    torch.manual_seed(seed + 1 + rank)
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)


def _json_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _restore_json(state: dict[str, Any]) -> None:
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def capture(info: DistInfo, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every rank's generator states (a collective: every rank calls it; rank 0 saves the result)."""
    tensors = {f"torch_cpu.rank{r}": t
               for r, t in enumerate(distributed.all_gather_bytes(torch.get_rng_state(), info))}
    if device.type == "cuda":
        cuda = torch.cuda.get_rng_state(device)  # a CPU uint8 tensor: gathered over gloo
        tensors.update({f"torch_cuda.rank{r}": t for r, t in enumerate(distributed.all_gather_bytes(cuda, info))})
    blobs = distributed.all_gather_blobs(json.dumps(_json_state()).encode(), info)
    return tensors, {f"rank{r}": json.loads(b) for r, b in enumerate(blobs)}


def _own(states: dict[str, Any], rank: int, prefix: str = "rank") -> Any:
    """This rank's entry; rank 0's when the checkpoint had fewer ranks."""
    return states.get(f"{prefix}{rank}", states.get(f"{prefix}0"))


def restore(tensors: dict[str, torch.Tensor], states: dict[str, Any], info: DistInfo, device: torch.device) -> None:
    """Restore this rank's states. Checkpoints written before states were kept per rank hold one
    JSON state (``{"numpy": ..., "python": ...}``) and one ``torch_cuda`` tensor: every rank gets those."""
    json_state = states if "numpy" in states else _own(states, info.rank)
    if json_state is None:
        raise KeyError("rng.rank0")
    _restore_json(json_state)
    cpu = _own(tensors, info.rank, "torch_cpu.rank")
    if cpu is None:
        raise KeyError("torch_cpu.rank0")
    torch.set_rng_state(cpu)
    if device.type == "cuda":
        cuda = _own(tensors, info.rank, "torch_cuda.rank")
        cuda = tensors.get("torch_cuda") if cuda is None else cuda
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
