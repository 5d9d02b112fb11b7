"""Imported models: an ONNX graph run by ONNX Runtime behind the same serving path as torch models.

ONNX is a protobuf graph of standard operators, so loading one executes no code of the
uploader's. The graph is checked before any session is built: no custom operator domains (a
custom op is native code the runtime would have to load), no external data files (the upload is
the whole model), an opset the installed onnx and runtime know, one input with a dynamic batch
dimension (float32 ``[batch, input_dim]`` for tabular features, or the declared tensor's dtype
and shape), and the named output shaped for the labels. Pickles
and ``torch.save``/``torch.export`` archives are refused by their first bytes, before parsing
(docs/models.md says why and how to convert).

An :class:`OnnxModel` is a :class:`~inference.model.LoadedModel`: records are encoded by the
manifest exactly as for Warden's own models (a tensor input's nested lists are checked by
:mod:`inference.tensors`), the micro-batcher calls
:meth:`OnnxModel.forward_probabilities`, and post-processing (a fairness mitigation's group
thresholds) applies to the graph's probabilities.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from inference.errors import ManifestError
from inference.manifest import ONNX_FILE, Manifest
from inference.model import LoadedModel
from inference.preprocessing import encode_records
from inference.tensors import encode_tensors

if TYPE_CHECKING:
    import onnx
    import onnxruntime

logger = logging.getLogger(__name__)

# The standard operator sets; anything else is a custom domain whose kernels are native code.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
_FLOAT = 1  # onnx.TensorProto.FLOAT
_DOUBLE = 11  # onnx.TensorProto.DOUBLE
# A tensor input's declared dtype as onnx.TensorProto's element type.
_ELEM_TYPES = {"float32": 1, "uint8": 2, "int32": 6, "int64": 7, "float64": 11}
# Rows of generated records an import is run on, and the tolerance on a row of probabilities.
PROBE_ROWS = 64
_PROB_TOL = 1e-4

# First bytes of files that execute code when loaded, with how to convert what they hold.
_CONVERT = (
    "convert it to ONNX: scikit-learn with skl2onnx (to_onnx(model, X[:1])), XGBoost or "
    "LightGBM with onnxmltools, PyTorch with torch.onnx.export"
)
_REFUSED_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".pt2", ".ckpt", ".bin")


class GraphRefused(ManifestError):
    """The upload is not an ONNX graph Warden will run; the message says what to change."""


def refuse_unsafe_format(head: bytes, filename: str | None = None) -> None:
    """Refuse pickles and zip archives (``torch.save``, ``torch.export`` ``.pt2``) by their bytes.

    Args:
        head: the file's first bytes (16 are enough).
        filename: the uploaded name, when there is one; its suffix is checked too.

    Raises:
        GraphRefused: naming the format and how to convert it.
    """
    lowered = (filename or "").lower()
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise GraphRefused(f"the file is a Python pickle, which runs code when loaded; {_CONVERT}")
    if head[:4] == b"PK\x03\x04":
        raise GraphRefused(
            "the file is a zip archive (torch.save or a torch.export .pt2), whose loading can "
            f"unpickle and run code; {_CONVERT}"
        )
    if head[:2] in (b"\x78\x9c", b"\x78\xda", b"\x78\x01") or head[:3] == b"\x1f\x8b\x08":
        raise GraphRefused(f"the file is a compressed (joblib) pickle; {_CONVERT}")
    if lowered.endswith(_REFUSED_SUFFIXES):
        raise GraphRefused(f"pickled or archived models are not accepted; {_CONVERT}")


def _subgraphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _subgraphs(attr.g)
            for sub in attr.graphs:
                yield from _subgraphs(sub)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None] | None:
    """The shape of a tensor input or output, None for a dynamic dimension; None if unranked."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _max_opsets() -> dict[str, int]:
    import onnx.defs

    ml = max(
        (
            s.since_version
            for s in onnx.defs.get_all_schemas_with_history()
            if s.domain == "ai.onnx.ml"
        ),
        default=0,
    )
    top = onnx.defs.onnx_opset_version()
    return {"": top, "ai.onnx": top, "ai.onnx.ml": max(ml, 1)}


@dataclass(frozen=True)
class GraphFacts:
    """What the checks found: the opsets and the graph's input and output."""

    opsets: dict[str, int]
    input: str
    output: str
    producer: str


def inspect_graph(data: bytes, manifest: Manifest) -> GraphFacts:
    """Check an ONNX graph against the manifest without running it.

    Args:
        data: the ``.onnx`` file's bytes.
        manifest: a manifest of kind ``onnx`` naming the input, output and labels.

    Returns:
        What was found.

    Raises:
        GraphRefused: every problem found, in one message.
    """
    import onnx
    from google.protobuf.message import DecodeError

    refuse_unsafe_format(data[:16])
    arch = manifest.architecture
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise GraphRefused("the file is not a readable ONNX model (truncated or corrupt)") from exc
    if not model.HasField("graph") or not model.graph.node:
        raise GraphRefused("the file is not a readable ONNX model (it holds no graph)")
    problems: list[str] = []
    limits = _max_opsets()
    opsets = {op.domain: op.version for op in model.opset_import}
    custom = sorted({d for d in opsets if d not in STANDARD_DOMAINS})
    for graph in _subgraphs(model.graph):
        custom += [n.domain for n in graph.node if n.domain not in STANDARD_DOMAINS]
        for tensor in [*graph.initializer, *(a.t for n in graph.node for a in n.attribute)]:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
                problems.append("the graph names external data files; embed every tensor")
                break
    if model.functions:
        custom += [f.domain for f in model.functions]
    if custom:
        # Names are the uploader's: shown quoted and cut short.
        problems.append(
            f"custom operator domain {sorted(set(custom))[0][:64]!r}: only the standard "
            "ai.onnx and ai.onnx.ml operators are accepted"
        )
    for domain, version in opsets.items():
        if domain in limits and not 1 <= version <= limits[domain]:
            problems.append(
                f"opset {version} of {domain or 'ai.onnx'} is not supported by the installed "
                f"runtime (at most {limits[domain]})"
            )
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [arch.input]:
        problems.append(
            f"the graph's inputs {[i.name[:64] for i in inputs]} are not the schema's one "
            f"input {arch.input!r}"
        )
    elif manifest.input_tensor is not None:
        problems += _tensor_input_problems(inputs[0], arch.input, manifest)
    else:
        (graph_input,) = inputs
        dims = _dims(graph_input)
        if graph_input.type.tensor_type.elem_type != _FLOAT:
            problems.append(f"input {arch.input!r} must be a float32 tensor")
        if dims is None or len(dims) != 2:
            problems.append(f"input {arch.input!r} must be a [batch, {arch.input_dim}] matrix")
        else:
            if dims[0] is not None:
                problems.append(
                    f"input {arch.input!r} has a fixed batch dimension {dims[0]}; export it "
                    "with a dynamic one (dynamic_axes / dynamic_shapes)"
                )
            if dims[1] != arch.input_dim:
                problems.append(
                    f"input {arch.input!r} takes {dims[1]} columns but the schema encodes "
                    f"{arch.input_dim}"
                )
    outputs = {o.name: o for o in model.graph.output}
    out = outputs.get(arch.output)
    if out is None:
        problems.append(
            f"the graph has no output {arch.output!r} (it has {[n[:64] for n in outputs][:8]})"
        )
    else:
        dims = _dims(out)
        if out.type.tensor_type.elem_type not in (_FLOAT, _DOUBLE):
            problems.append(f"output {arch.output!r} must be a float tensor")
        want = [1] if arch.output_kind == "score" else [arch.output_dim]
        if dims is not None and not (
            (len(dims) == 2 and dims[1] in (*want, None))
            or (arch.output_kind == "score" and len(dims) == 1)
        ):
            problems.append(
                f"output {arch.output!r} must be [batch, {want[0]}] for {arch.output_kind}"
            )
        elif dims and dims[0] is not None:
            problems.append(f"output {arch.output!r} has a fixed batch dimension {dims[0]}")
    if not problems:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            problems.append(f"the graph does not pass the ONNX checker: {str(exc)[:300]}")
    if problems:
        raise GraphRefused("; ".join(problems))
    return GraphFacts(
        opsets=opsets, input=arch.input, output=arch.output, producer=model.producer_name[:64]
    )


def _tensor_input_problems(
    graph_input: onnx.ValueInfoProto, name: str, manifest: Manifest
) -> list[str]:
    """How the graph's input differs from the declared tensor (a symbolic size fits any)."""
    spec = manifest.input_tensor
    assert spec is not None
    declared = [None, *spec.shape]
    problems = []
    if graph_input.type.tensor_type.elem_type != _ELEM_TYPES[spec.dtype]:
        problems.append(f"input {name!r} is not a tensor of {spec.dtype} as the schema declares")
    dims = _dims(graph_input)
    if dims is None or len(dims) != len(declared):
        problems.append(f"input {name!r} is not of rank {len(declared)} as the schema declares")
    elif dims[0] is not None:
        problems.append(
            f"input {name!r} has a fixed batch dimension {dims[0]}; export it with a dynamic "
            "one (dynamic_axes / dynamic_shapes)"
        )
    elif any(g is not None and g != d for g, d in zip(dims[1:], spec.shape, strict=True)):
        shown = ["batch" if d is None else d for d in dims]
        problems.append(
            f"input {name!r} has shape {shown} but the schema declares {['batch', *spec.shape]}"
        )
    return problems


def providers_for(device: torch.device) -> list[Any]:
    """ONNX Runtime's execution providers for the torch core's device.

    CUDA when the device is a GPU and this runtime has the CUDA provider (``onnxruntime-gpu``),
    else the CPU; the fallback is logged, never silent.
    """
    import onnxruntime

    if device.type == "cuda":
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            index = device.index if device.index is not None else torch.cuda.current_device()
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        logger.warning(
            "device %s asked for, but this ONNX Runtime has no CUDA provider "
            "(install onnxruntime-gpu); imported models run on the CPU",
            device,
        )
    return ["CPUExecutionProvider"]


def build_session(data: bytes, device: torch.device, threads: int) -> onnxruntime.InferenceSession:
    """An inference session for verified graph bytes on the device's provider.

    Raises:
        GraphRefused: the runtime cannot load the graph (an operator or opset it lacks).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            data, sess_options=options, providers=providers_for(device)
        )
    except Exception as exc:  # onnxruntime raises its own unexported error types
        raise GraphRefused(
            f"the installed ONNX Runtime cannot load this graph: {str(exc)[:300]}"
        ) from None


class OnnxModel(LoadedModel):
    """An imported graph on its device: encoded rows in, probabilities out.

    Args:
        manifest: the verified manifest (kind ``onnx``).
        graph: the verified ``.onnx`` bytes.
        device: where the torch core runs; ONNX Runtime takes the same choice.
        threads: ONNX Runtime's intra-op threads per session.
    """

    def __init__(
        self, manifest: Manifest, graph: bytes, device: torch.device, *, threads: int = 1
    ) -> None:
        self.manifest = manifest
        self.device = device
        self.graph = graph
        self.threads = threads
        self.plan = None
        self.facts = inspect_graph(graph, manifest)
        self.session = build_session(graph, device, threads)
        self.provider = self.session.get_providers()[0]
        self._input = manifest.architecture.input
        self._outputs = [manifest.architecture.output]
        tensor = manifest.input_tensor
        self._shape = (-1, *tensor.shape) if tensor is not None else None
        logger.info(
            "model %s %s runs on ONNX Runtime with %s (%d threads)",
            manifest.name,
            manifest.version,
            self.provider,
            threads,
        )

    @classmethod
    def from_artifact(
        cls, artifact_dir: str | Path, manifest: Manifest, device: torch.device, *, threads: int
    ) -> OnnxModel:
        """Load a verified manifest's graph; the bytes hashed are the bytes run.

        Raises:
            ManifestError: the graph does not match its sha256 or fails the checks.
        """
        try:
            data = (Path(artifact_dir) / manifest.weights_file).read_bytes()
        except OSError as exc:
            raise ManifestError("the graph file could not be read") from exc
        if hashlib.sha256(data).hexdigest() != manifest.weights_sha256:
            raise ManifestError("the graph file does not match its sha256 in the manifest")
        return cls(manifest, data, device, threads=threads)

    @property
    def runtime(self) -> str:
        """What runs the forward pass, for health checks."""
        return f"onnxruntime/{self.provider}"

    def encode(self, records: Sequence[Any]) -> torch.Tensor:
        """Validate and encode records, or a tensor input's nested lists, flattened."""
        if self.manifest.input_tensor is not None:
            return encode_tensors(self.manifest.input_tensor, records)
        return encode_records(self.manifest, records)

    def forward_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities for an encoded batch, on the CPU (the graph's output, made one)."""
        batch = x.numpy() if self._shape is None else x.reshape(self._shape).numpy()
        (out,) = self.session.run(self._outputs, {self._input: batch})
        values = torch.from_numpy(np.asarray(out, dtype=np.float32))
        kind = self.manifest.architecture.output_kind
        if kind == "logits":
            return torch.softmax(values, dim=-1)
        if kind == "score":
            score = values.reshape(-1)
            return torch.stack((1.0 - score, score), dim=1)
        return values

    def with_manifest(self, manifest: Manifest) -> OnnxModel:
        return OnnxModel(manifest, self.graph, self.device, threads=self.threads)

    def save(
        self, out_dir: str | Path, manifest: Manifest, *, extra_files: dict[str, bytes]
    ) -> Manifest:
        return save_graph_artifact(out_dir, self.graph, manifest, extra_files=extra_files)


def save_graph_artifact(
    out_dir: str | Path,
    graph: bytes,
    manifest: Manifest | dict[str, Any],
    *,
    extra_files: dict[str, bytes] | None = None,
) -> Manifest:
    """Write an imported model's artifact folder: ``model.onnx``, extra files, manifest last.

    Raises:
        ManifestError: the manifest is invalid (nothing is written then).
    """
    from inference.artifact import write_artifact

    def onnx_kind(parsed: Manifest) -> None:
        if parsed.architecture.kind != "onnx":
            raise ManifestError("an ONNX artifact needs an architecture of kind onnx")

    return write_artifact(
        out_dir,
        manifest,
        weights_file=ONNX_FILE,
        weights=graph,
        extra_files=extra_files,
        check=onnx_kind,
    )


def probe_tensors(manifest: Manifest, rows: int = PROBE_ROWS, seed: int = 0) -> list[Any]:
    """Tensor inputs of the declared shape: zeros, ones, then values drawn from [-1, 1] (from
    {0, 1} for an integer dtype, which is as much as any index or token input may assume)."""
    spec = manifest.input_tensor
    assert spec is not None
    gen = np.random.default_rng(seed)
    integer = np.dtype(spec.dtype).kind in "iu"
    out: list[Any] = []
    for i in range(rows):
        if i < 2:
            value = np.full(spec.shape, i, dtype=spec.dtype)
        elif integer:
            value = gen.integers(0, 2, size=spec.shape).astype(spec.dtype)
        else:
            value = gen.uniform(-1.0, 1.0, size=spec.shape).astype(spec.dtype)
        out.append(value.tolist())
    return out


def probe_records(manifest: Manifest, rows: int = PROBE_ROWS, seed: int = 0) -> list[Any]:
    """Records drawn from the schema: every category, bounds, extremes and typical values (or
    tensors of the declared shape, for a tensor input)."""
    if manifest.input_tensor is not None:
        return probe_tensors(manifest, rows, seed)
    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(rows):
        record: dict[str, Any] = {}
        for feat in manifest.features:
            if feat.type == "categorical":
                record[feat.name] = feat.categories[i % len(feat.categories)]
            elif feat.lo is not None and feat.hi is not None:
                edges = (feat.lo, feat.hi)
                record[feat.name] = edges[i % 2] if i < 2 else rng.uniform(feat.lo, feat.hi)
            else:
                spread = feat.std * 3 if feat.std != 1.0 or feat.mean != 0.0 else 1000.0
                value = feat.mean + rng.uniform(-spread, spread)
                if feat.transform == "log1p":
                    value = max(value, 0.0)
                record[feat.name] = value
        out.append(record)
    return out


def check_outputs(model: LoadedModel, records: Sequence[Any]) -> None:
    """Run the model on records one at a time and all at once; refuse bad outputs.

    Raises:
        GraphRefused: the graph fails on a batch size, gives non-finite values, or (for
            probabilities) values outside [0, 1] or rows that do not sum to one.
    """
    x = model.encode(records)
    kind = model.manifest.architecture.output_kind
    for batch in (x[:1], x):
        try:
            probs = model.forward_probabilities(batch)
        except Exception as exc:  # the runtime's own error types
            raise GraphRefused(
                f"the graph failed on a batch of {len(batch)} generated records: {str(exc)[:300]}"
            ) from None
        if tuple(probs.shape) != (len(batch), len(model.manifest.labels)):
            raise GraphRefused(
                f"the graph's output has shape {tuple(probs.shape)} for {len(batch)} records, "
                f"not [{len(batch)}, {len(model.manifest.labels)}]"
            )
        values = probs.double()
        if not bool(torch.isfinite(values).all()):
            raise GraphRefused("the graph's outputs are not finite on generated records")
        if kind in ("probabilities", "score"):
            in_range = bool(((values >= -_PROB_TOL) & (values <= 1 + _PROB_TOL)).all())
            sums = values.sum(dim=1)
            if not in_range or not all(math.isclose(s, 1.0, abs_tol=1e-3) for s in sums.tolist()):
                raise GraphRefused(
                    f"the output declared as {kind} does not hold probabilities on generated "
                    "records (values outside [0, 1] or rows not summing to 1)"
                )
