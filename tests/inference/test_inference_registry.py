"""ModelHost: load, serve, swap under traffic, unload, leases."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from inference_factories import random_records, write_artifact

from inference.artifact import artifact_digest
from inference.batcher import EXECUTIONS, Execution
from inference.errors import BatcherClosedError, InferenceError, ManifestError, ModelNotLoadedError
from inference.registry import AUTO_LOOP_BUDGET_MS, ModelHost

CPU = torch.device("cpu")


@pytest.fixture(params=EXECUTIONS)
def host(request: pytest.FixtureRequest) -> Iterator[ModelHost]:
    h = ModelHost(device=CPU, max_batch_rows=32, execution=request.param)
    yield h
    h.close(timeout=5)


def _artifact(tmp_path: Path, version: str, seed: int) -> Path:
    return write_artifact(tmp_path / version, seed=seed, version=version)


async def _predict(host: ModelHost, name: str, records: list[dict]) -> tuple[str, list[str]]:
    with host.lease(name) as hosted:
        x = hosted.model.encode(records)
        probs = await hosted.batcher.submit(x)
        return hosted.version, [p.label for p in hosted.model.decide(records, x, probs)]


def test_load_get_and_predict(tmp_path: Path, host: ModelHost) -> None:
    root = _artifact(tmp_path, "v1", 0)
    hosted = host.load("adult-mlp", "v1", root, expected_sha256=artifact_digest(root))
    assert host.get("adult-mlp") is hosted and host.serving() == {"adult-mlp": "v1"}
    assert hosted.batcher.running and hosted.digest == artifact_digest(root)
    records = random_records(torch.Generator().manual_seed(0), 10)
    version, labels = asyncio.run(_predict(host, "adult-mlp", records))
    assert version == "v1"
    assert labels == [p.label for p in hosted.model.predict(records)]
    assert host.load("adult-mlp", "v1", root) is hosted  # loading again reloads nothing


def test_unknown_name_and_version(host: ModelHost) -> None:
    with pytest.raises(ModelNotLoadedError):
        host.get("nope")
    with pytest.raises(ModelNotLoadedError), host.lease("nope"):
        pass
    with pytest.raises(ModelNotLoadedError):
        host.get_version("nope", "v1")
    with pytest.raises(ModelNotLoadedError):
        host.unload("nope", "v1")
    with pytest.raises(ModelNotLoadedError):
        host.serve("nope", "v1")


def test_manifest_must_name_the_registered_model(tmp_path: Path, host: ModelHost) -> None:
    root = _artifact(tmp_path, "v1", 0)
    with pytest.raises(ManifestError, match="another model"):
        host.load("adult-mlp", "v2", root)
    with pytest.raises(ManifestError, match="another model"):
        host.load("credit", "v1", root)
    assert host.loaded() == []


def test_pinned_digest_mismatch_loads_nothing(tmp_path: Path, host: ModelHost) -> None:
    root = _artifact(tmp_path, "v1", 0)
    with pytest.raises(ManifestError):
        host.load("adult-mlp", "v1", root, expected_sha256="0" * 64)
    assert host.loaded() == [] and host.serving() == {}


def test_promotion_swaps_and_retires_the_previous(tmp_path: Path, host: ModelHost) -> None:
    v1 = host.load("adult-mlp", "v1", _artifact(tmp_path, "v1", 0))
    records = random_records(torch.Generator().manual_seed(1), 4)

    async def scenario() -> None:
        with host.lease("adult-mlp") as held:
            assert held is v1
            v2 = host.load("adult-mlp", "v2", _artifact(tmp_path, "v2", 1))
            assert host.get("adult-mlp") is v2 and host.loaded() == [("adult-mlp", "v2")]
            # The request that leased v1 before the swap still finishes on v1.
            x = held.model.encode(records)
            assert (await held.batcher.submit(x)).shape == (4, 2)
            assert v1.batcher.running
        # Its last lease ended: v1's batcher drains and stops.
        assert not v1.batcher.running
        with pytest.raises(BatcherClosedError):
            await v1.batcher.submit(x)
        assert (await _predict(host, "adult-mlp", records))[0] == "v2"

    asyncio.run(scenario())


def test_a_lease_ends_with_its_block_even_when_the_request_fails(
    tmp_path: Path, host: ModelHost
) -> None:
    v1 = host.load("adult-mlp", "v1", _artifact(tmp_path, "v1", 0))
    with pytest.raises(RuntimeError), host.lease("adult-mlp") as held:
        assert held is v1
        host.load("adult-mlp", "v2", _artifact(tmp_path, "v2", 1))
        assert v1.batcher.running  # still leased
        raise RuntimeError("the request failed")
    assert not v1.batcher.running


def test_keep_previous_then_rollback(tmp_path: Path, host: ModelHost) -> None:
    v1 = host.load("adult-mlp", "v1", _artifact(tmp_path, "v1", 0))
    host.load("adult-mlp", "v2", _artifact(tmp_path, "v2", 1), keep_previous=True)
    assert host.loaded() == [("adult-mlp", "v1"), ("adult-mlp", "v2")]
    host.serve("adult-mlp", "v1")
    assert host.get("adult-mlp") is v1 and v1.batcher.running
    staged = host.load("adult-mlp", "v3", _artifact(tmp_path, "v3", 2), serve=False)
    assert host.get("adult-mlp") is v1 and host.get_version("adult-mlp", "v3") is staged
    with host.lease("adult-mlp", "v3") as leased:
        assert leased is staged


def test_unload_serving_version(tmp_path: Path, host: ModelHost) -> None:
    v1 = host.load("adult-mlp", "v1", _artifact(tmp_path, "v1", 0))
    host.unload("adult-mlp", "v1")
    assert not v1.batcher.running
    with pytest.raises(ModelNotLoadedError):
        host.get("adult-mlp")
    assert host.serving() == {} and host.loaded() == []


def test_closed_host_refuses_loads(tmp_path: Path) -> None:
    host = ModelHost(device=CPU)
    v1 = host.load("adult-mlp", "v1", _artifact(tmp_path, "v1", 0))
    host.close(timeout=5)
    assert not v1.batcher.running and host.loaded() == []
    with pytest.raises(InferenceError, match="closed"):
        host.load("adult-mlp", "v1", tmp_path / "v1")


def test_swaps_under_concurrent_traffic(tmp_path: Path, host: ModelHost) -> None:
    """Requests never fail while versions are swapped from another thread."""
    roots = [_artifact(tmp_path, f"v{i}", i) for i in range(4)]
    host.load("adult-mlp", "v0", roots[0])
    records = random_records(torch.Generator().manual_seed(3), 2)
    seen: list[str] = []
    stop = threading.Event()
    # The swapper waits until traffic has been served by each version it
    # loads, so the test holds however the two threads are scheduled.
    wanted = {"version": "v0", "served": threading.Event()}

    def swapper() -> None:
        try:
            assert wanted["served"].wait(30)  # type: ignore[attr-defined]
            for i in (1, 2, 3, 0, 1):
                served = threading.Event()
                wanted.update(version=f"v{i}", served=served)
                host.load("adult-mlp", f"v{i}", roots[i])
                assert served.wait(30), f"no request was served by v{i}"
        finally:
            stop.set()

    async def traffic() -> None:
        async def client() -> None:
            while not stop.is_set():
                version, labels = await _predict(host, "adult-mlp", records)
                seen.append(version)
                assert len(labels) == 2
                if version == wanted["version"]:
                    wanted["served"].set()  # type: ignore[attr-defined]

        await asyncio.gather(*(client() for _ in range(16)))

    thread = threading.Thread(target=swapper)
    thread.start()
    asyncio.run(traffic())
    thread.join(10)
    assert host.get("adult-mlp").version == "v1"
    assert host.loaded() == [("adult-mlp", "v1")]
    assert {"v0", "v1", "v2", "v3"} <= set(seen)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_concurrent_loads_of_one_version_keep_one(tmp_path: Path, execution: Execution) -> None:
    host = ModelHost(device=CPU, max_batch_rows=32, execution=execution)
    root = _artifact(tmp_path, "v1", 0)
    results = []
    barrier = threading.Barrier(4)

    def load() -> None:
        barrier.wait()
        results.append(host.load("adult-mlp", "v1", root))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(r) for r in results}) == 1 and results[0].batcher.running
    alive = [t for t in threading.enumerate() if t.name.startswith("batcher-adult-mlp@v1")]
    # The losers' worker threads were stopped; on the loop there are none at all.
    assert len(alive) == (1 if execution == "thread" else 0)
    host.close(timeout=5)


def test_execution_chosen_for_the_device_has_a_loop_budget(tmp_path: Path) -> None:
    auto = ModelHost(device=CPU)
    forced = ModelHost(device=CPU, execution="loop")
    try:
        root = _artifact(tmp_path, "v1", 0)
        chosen = auto.load("adult-mlp", "v1", root).batcher
        assert chosen.execution == "loop" and chosen.loop_budget_s == AUTO_LOOP_BUDGET_MS / 1000
        kept = forced.load("adult-mlp", "v1", root).batcher
        assert kept.execution == "loop" and kept.loop_budget_s is None
    finally:
        auto.close(timeout=5)
        forced.close(timeout=5)
