"""Device and backend of each rank, failure agreement and fault rules (the pure parts of the
multi-process set-up; a real two-process job is in tests/integration/test_train.py)."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import ConfigError
from zoo.train import faults
from zoo.train.distributed import (
    DistInfo,
    backend_for,
    ddp_device_ids,
    env_info,
    failed_ranks,
    select_device,
)

RANK3 = DistInfo(rank=3, world_size=4, local_rank=3)


def test_each_rank_gets_its_own_gpu() -> None:
    assert select_device("auto", RANK3, cuda_count=4) == torch.device("cuda", 3)
    assert select_device("cuda", RANK3, cuda_count=4) == torch.device("cuda", 3)
    assert select_device("cuda", DistInfo(), cuda_count=1) == torch.device("cuda", 0)
    assert select_device("cuda:1", RANK3, cuda_count=4) == torch.device("cuda", 1)  # explicit: as given
    assert select_device("auto", RANK3, cuda_count=0) == torch.device("cpu")
    assert select_device("cpu", RANK3, cuda_count=4) == torch.device("cpu")


@pytest.mark.parametrize(("name", "count", "message"), [
    ("gpu", 1, "train.device = 'gpu' is not a device; allowed values: auto, cpu, cuda, cuda:N"),
    ("meta", 1, "train.device = 'meta' is not a device"),
    ("cuda:x", 1, "train.device = 'cuda:x' is not a device"),
    ("cuda:3", 0, "train.device = 'cuda:3' but CUDA is not available here"),
    ("cuda", 2, "train.device = 'cuda': local rank 3 needs GPU 3, but 2 GPU(s) are visible"),
    ("cuda:5", 2, "train.device = 'cuda:5': cuda:5 needs GPU 5, but 2 GPU(s) are visible"),
])
def test_bad_devices_name_the_key_and_the_allowed_values(name: str, count: int, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        select_device(name, RANK3, cuda_count=count)
    assert message in str(err.value)


def test_backend_serves_cpu_tensors_on_cuda() -> None:
    assert backend_for(torch.device("cuda", 2)) == "cpu:gloo,cuda:nccl"
    assert backend_for(torch.device("cpu")) == "gloo"
    assert ddp_device_ids(torch.device("cuda", 2)) == [2]
    assert ddp_device_ids(torch.device("cpu")) is None


def test_env_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_info() == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert env_info() == DistInfo(rank=5, world_size=4, local_rank=1)


def test_failed_ranks_in_one_process() -> None:
    assert failed_ranks(False, DistInfo()) == []
    assert failed_ranks(True, DistInfo()) == [0]


def test_nan_fault_can_target_one_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_FAULT", "nan@step=2,nan@rank=1")
    assert faults.nan_at_step(2, rank=1) and not faults.nan_at_step(2, rank=0) and not faults.nan_at_step(3, 1)
    monkeypatch.setenv("ZOO_FAULT", "nan@step=2")
    assert faults.nan_at_step(2, rank=0) and faults.nan_at_step(2, rank=1)
