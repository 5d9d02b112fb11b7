"""Device selection, and a real forward pass on CUDA when the machine has one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from inference_factories import random_records

from inference.batcher import MicroBatcher, default_execution
from inference.device import select_device
from inference.errors import DeviceError, InferenceError
from inference.model import LoadedModel

HAS_CUDA = torch.cuda.is_available()


def test_cpu_and_auto() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert select_device().type == select_device("auto").type


def test_forward_passes_run_on_the_loop_on_cpu_and_in_a_thread_on_a_gpu() -> None:
    assert default_execution(torch.device("cpu")) == "loop"
    assert default_execution(torch.device("cuda")) == "thread"
    assert default_execution(torch.device("cuda", 1)) == "thread"


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("preference", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cuda_is_refused(preference: str) -> None:
    with pytest.raises(DeviceError, match="not available") as info:
        select_device(preference)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InferenceError)


@pytest.mark.parametrize("preference", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "mps", ""])
def test_malformed_preference_is_refused(preference: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        select_device(preference)


@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_missing_gpu_index_is_refused() -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        select_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_cuda_forward_matches_cpu(artifact_dir: Path) -> None:
    cpu = LoadedModel.load(artifact_dir, torch.device("cpu"))
    gpu = LoadedModel.load(artifact_dir, select_device("cuda"))
    assert next(gpu.module.parameters()).device.type == "cuda"
    records = random_records(torch.Generator().manual_seed(0), 512)
    x = cpu.encode(records)
    on_gpu = gpu.forward_probabilities(x)
    assert on_gpu.device.type == "cpu"  # results always come back to the host
    torch.testing.assert_close(on_gpu, cpu.forward_probabilities(x), atol=1e-5, rtol=0)
    assert [p.label for p in gpu.predict(records)] == [p.label for p in cpu.predict(records)]

    async def batched() -> list[torch.Tensor]:
        async with MicroBatcher.for_model(gpu, max_batch_rows=64) as batcher:
            return await asyncio.gather(*(batcher.submit(x[i : i + 3]) for i in range(0, 512, 3)))

    merged = torch.cat(asyncio.run(batched()))
    torch.testing.assert_close(merged, cpu.forward_probabilities(x), atol=1e-5, rtol=0)
