"""ONNX graphs in the inference core: what is refused before a session exists, and what runs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import pickle
import threading
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from inference.artifact import read_manifest
from inference.batcher import EXECUTIONS, Execution
from inference.errors import ManifestError
from inference.model import LoadedModel
from inference.onnx_model import (
    GraphRefused,
    OnnxModel,
    check_outputs,
    inspect_graph,
    probe_records,
    providers_for,
    refuse_unsafe_format,
    save_graph_artifact,
)
from inference.registry import ModelHost
from tests.onnx_graphs import linear_graph, numeric_manifest

CPU = torch.device("cpu")


def test_a_good_graph_runs_as_onnxruntime_does(tmp_path: Path) -> None:
    data = linear_graph()
    manifest = numeric_manifest()
    save_graph_artifact(tmp_path, data, manifest, extra_files={"model_card.json": b"{}"})
    model = LoadedModel.load(tmp_path, CPU, onnx_threads=2)
    assert isinstance(model, OnnxModel)
    assert model.runtime == "onnxruntime/CPUExecutionProvider"
    records = probe_records(model.manifest)
    check_outputs(model, records)
    x = model.encode(records)
    direct = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (expected,) = direct.run(["probabilities"], {"X": x.numpy()})
    got = model.forward_probabilities(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    labels = [p.label for p in model.predict(records[:4])]
    assert labels == [("no", "yes")[int(np.argmax(row))] for row in expected[:4]]


def test_logits_and_scores_become_probabilities() -> None:
    logits = OnnxModel(
        numeric_manifest(kind="logits"), linear_graph(head="Identity"), CPU, threads=1
    )
    probs = logits.forward_probabilities(torch.ones(3, 3))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    check_outputs(logits, probe_records(logits.manifest))


def test_the_artifact_pins_the_graph(tmp_path: Path) -> None:
    save_graph_artifact(tmp_path, linear_graph(), numeric_manifest())
    (tmp_path / "model.onnx").write_bytes(linear_graph(scale=2.0))
    with pytest.raises(ManifestError, match="sha256"):
        LoadedModel.load(tmp_path, CPU)


def test_mitigation_keeps_the_graph(tmp_path: Path) -> None:
    model = OnnxModel(numeric_manifest(), linear_graph(), CPU)
    renamed = dataclasses.replace(model.manifest, version="2")
    model.with_manifest(renamed).save(tmp_path, renamed, extra_files={})
    assert read_manifest(tmp_path).version == "2"
    assert (tmp_path / "model.onnx").read_bytes() == model.graph


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (linear_graph()[:150], "truncated or corrupt"),
        (linear_graph(domain="com.example.custom"), "custom operator domain"),
        (linear_graph(batch=4), "fixed batch dimension"),
        (linear_graph(width=5), "takes 5 columns"),
        (linear_graph(output="scores"), "no output 'probabilities'"),
        (linear_graph(external=True), "external data"),
        (linear_graph(opset=99), "opset 99"),
        (b"", "truncated or corrupt|holds no graph"),
    ],
    ids=["truncated", "custom-op", "fixed-batch", "width", "output", "external", "opset", "empty"],
)
def test_bad_graphs_are_refused_before_any_session(data: bytes, match: str) -> None:
    with pytest.raises(GraphRefused, match=match):
        inspect_graph(data, numeric_manifest())


@pytest.mark.parametrize(
    ("graph", "kind", "match"),
    [
        (linear_graph(head="Identity", scale=50.0), "probabilities", "does not hold probabilities"),
        (linear_graph(head="Log", scale=0.0), "logits", "not finite"),
    ],
    ids=["not-probabilities", "not-finite"],
)
def test_bad_outputs_are_refused_on_generated_records(graph: bytes, kind: str, match: str) -> None:
    model = OnnxModel(numeric_manifest(kind=kind), graph, CPU)
    with pytest.raises(GraphRefused, match=match):
        check_outputs(model, probe_records(model.manifest))


def test_pickles_and_archives_are_refused_with_how_to_convert() -> None:
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buffer)
    for data, name in (
        (pickle.dumps({"weights": [1, 2]}), "model.onnx"),
        (buffer.getvalue(), "model.onnx"),
        (b"\x78\x9c" + b"\x00" * 14, "model.onnx"),
        (linear_graph(), "model.pkl"),
        (linear_graph(), "model.pt2"),
    ):
        with pytest.raises(GraphRefused, match="convert it to ONNX"):
            refuse_unsafe_format(data[:16], name)
    with pytest.raises(GraphRefused, match="pickle"):
        inspect_graph(pickle.dumps(object), numeric_manifest())


def test_a_cpu_device_uses_the_cpu_provider() -> None:
    assert providers_for(CPU) == ["CPUExecutionProvider"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_device_uses_the_cuda_provider_when_the_runtime_has_it() -> None:
    model = OnnxModel(numeric_manifest(), linear_graph(), torch.device("cuda"))
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert model.provider == "CUDAExecutionProvider"
    else:
        assert model.provider == "CPUExecutionProvider"
    check_outputs(model, probe_records(model.manifest))


@pytest.mark.slow
def test_torch_2_exporter_graphs_import_offline() -> None:
    """torch.onnx.export's default (dynamo) exporter, with onnxscript, as a user runs it."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    program = torch.onnx.export(
        net.eval(),
        (torch.zeros(2, 3),),
        input_names=["X"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
    )
    assert program is not None
    data = program.model_proto.SerializeToString()
    model = OnnxModel(numeric_manifest(output="logits", kind="logits"), data, CPU)
    check_outputs(model, probe_records(model.manifest))
    x = torch.randn(5, 3)
    with torch.no_grad():
        expected = torch.softmax(net(x), dim=1)
    torch.testing.assert_close(model.forward_probabilities(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_imported_versions_swap_under_traffic_without_dropping_requests(
    tmp_path: Path, execution: Execution
) -> None:
    host = ModelHost(device=CPU, max_batch_rows=32, execution=execution, onnx_threads=1)
    roots = []
    for i in range(3):
        manifest = dataclasses.replace(numeric_manifest(), version=f"v{i}")
        save_graph_artifact(tmp_path / f"v{i}", linear_graph(scale=1.0 + i), manifest)
        roots.append(tmp_path / f"v{i}")
    records = probe_records(numeric_manifest(), rows=2)
    host.load("imported", "v0", roots[0])
    seen: list[str] = []
    stop = threading.Event()

    def swapper() -> None:
        try:
            for i in (1, 2, 0, 1):
                while not seen:  # traffic has started
                    stop.wait(0.001)
                host.load("imported", f"v{i}", roots[i])
                count = len(seen)
                while len(seen) < count + 50:  # this version serves before the next swap
                    stop.wait(0.001)
        finally:
            stop.set()

    async def traffic() -> None:
        async def client() -> None:
            while not stop.is_set():
                with host.lease("imported") as hosted:
                    x = hosted.model.encode(records)
                    probs = await hosted.batcher.submit(x)
                    assert len(hosted.model.decide(records, x, probs)) == 2
                    seen.append(hosted.version)

        await asyncio.gather(*(client() for _ in range(16)))

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        asyncio.run(traffic())
    finally:
        thread.join(30)
        host.close(timeout=5)
    assert {"v0", "v1", "v2"} <= set(seen)
    assert host.runtimes() == {}  # closed
