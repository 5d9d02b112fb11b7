"""Models trained outside Warden on Adult, converted to ONNX, and the import schema for them.

The rows are encoded by Warden's own encoder with ``preprocessing: none`` (numbers as they are,
categories one-hot in the schema's order), so what the models were trained on is what Warden
feeds the graph.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from governance.datasets.tabular import LoadedDataset
from inference.manifest import Architecture, Feature, Manifest
from inference.preprocessing import encode_columns

CARD = {
    "trained_by": "credit-risk modelling team",
    "training_data": "adult",
    "code_version": "git 4f2a9c1",
    "intended_use": "income pre-screening research",
    "out_of_scope_uses": "automated final decisions about people",
}


def schema_doc(data: LoadedDataset, *, output: str, kind: str, **card: str) -> dict[str, Any]:
    """The import schema for a graph taking Adult's features, encoded by Warden."""
    features: list[dict[str, Any]] = []
    for spec in data.schema.features:
        if spec.type == "categorical":
            features.append(
                {"name": spec.name, "type": "categorical", "categories": list(spec.categories)}
            )
        else:
            features.append(
                {
                    "name": spec.name,
                    "type": "numeric",
                    "lo": spec.lo,
                    "hi": spec.hi,
                    "out_of_bounds": spec.out_of_bounds,
                    "preprocessing": "none",
                }
            )
    return {
        "input": {"name": "X", "features": features},
        "output": {"name": output, "kind": kind, "labels": list(data.schema.label.names)},
        "card": {**CARD, **card},
    }


def schema_text(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def encoded(data: LoadedDataset, frame: Any) -> np.ndarray:
    """Rows encoded as Warden encodes requests under ``preprocessing: none``."""
    doc = schema_doc(data, output="p", kind="probabilities")
    feats = tuple(
        Feature(f["name"], "categorical", categories=tuple(f["categories"]))
        if f["type"] == "categorical"
        else Feature(f["name"], "numeric", lo=f["lo"], hi=f["hi"], out_of_bounds=f["out_of_bounds"])
        for f in doc["input"]["features"]
    )
    width = sum(f.width for f in feats)
    view = Manifest(
        name="view",
        version="1",
        architecture=Architecture(kind="logreg", input_dim=width, output_dim=2),
        features=feats,
        labels=tuple(data.schema.label.names),
    )
    columns = {f.name: frame[f.name].to_numpy() for f in feats}
    return encode_columns(view, columns).numpy()


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    x_test: np.ndarray


def gradient_boosting(data: LoadedDataset, rows: int = 6000) -> Trained:
    """scikit-learn's HistGradientBoostingClassifier, converted by skl2onnx."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x = encoded(data, data.train.features.iloc[:rows])
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    # One thread: OpenMP workers on a shared CPU cost far more than they save here.
    with threadpool_limits(1):
        model.fit(x, data.train.labels[:rows])
    graph = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    return Trained(graph.SerializeToString(), encoded(data, data.test.features))


def torch_network(data: LoadedDataset, rows: int = 6000) -> Trained:
    """A small torch network trained here, exported by torch.onnx.export (logits out)."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.from_numpy(encoded(data, data.train.features.iloc[:rows]))
    y = torch.from_numpy(data.train.labels[:rows]).long()
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    try:
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        net,
        (x[:2],),
        buffer,
        input_names=["X"],
        output_names=["logits"],
        dynamic_axes={"X": {0: "batch"}, "logits": {0: "batch"}},
        # The TorchScript exporter: a tenth of a second, where the dynamo one spends most of a
        # test's budget importing onnxscript (tests/inference/test_onnx_model.py runs that one).
        dynamo=False,
    )
    return Trained(buffer.getvalue(), encoded(data, data.test.features))
