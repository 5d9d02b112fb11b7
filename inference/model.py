"""A loaded, verified model ready to serve: records in, labelled probabilities out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inference.artifact import load_weights, read_manifest, save_artifact
from inference.manifest import Manifest
from inference.plan import plan_for
from inference.postprocess import apply_group_threshold, row_uniforms
from inference.preprocessing import encode_records, raw_values


@dataclass(frozen=True)
class Prediction:
    """One record's decision: the label and the probability of each label."""

    label: str
    probabilities: dict[str, float]


class LoadedModel:
    """A model on its device. Thread-safe for inference (no mutable state after load).

    Args:
        manifest: the verified manifest.
        module: the module with its weights loaded.
        device: where forward passes run.
    """

    def __init__(self, manifest: Manifest, module: nn.Module, device: torch.device) -> None:
        self.manifest = manifest
        self.device = device
        self.module = module.to(device).eval()
        # The same operators without module dispatch, for the architectures that allow it.
        self.plan = plan_for(self.module)

    @classmethod
    def load(
        cls,
        artifact_dir: str | Path,
        device: torch.device,
        *,
        expected_sha256: str | None = None,
        onnx_threads: int = 1,
    ) -> LoadedModel:
        """Verify and load an artifact.

        Args:
            artifact_dir: the artifact folder.
            device: where forward passes will run.
            expected_sha256: the registered digest of ``manifest.json``
                (:func:`inference.artifact.artifact_digest`); pins the whole artifact.
            onnx_threads: ONNX Runtime's intra-op threads, for an imported (onnx) model.

        Returns:
            The model, in eval mode on ``device``.

        Raises:
            ManifestError: on any integrity or format problem.
        """
        manifest = read_manifest(artifact_dir, expected_sha256=expected_sha256)
        if manifest.architecture.kind == "onnx":
            # Imported only here: onnxruntime stays off the import path of torch-only serving.
            from inference.onnx_model import OnnxModel

            return OnnxModel.from_artifact(artifact_dir, manifest, device, threads=onnx_threads)
        return cls(manifest, load_weights(artifact_dir, manifest), device)

    @property
    def runtime(self) -> str:
        """What runs the forward pass, for health checks."""
        return f"torch/{self.device}"

    def with_manifest(self, manifest: Manifest) -> LoadedModel:
        """The same weights under another manifest (a mitigation's post-processing)."""
        return LoadedModel(manifest, self.module, self.device)

    def save(
        self, out_dir: str | Path, manifest: Manifest, *, extra_files: dict[str, bytes]
    ) -> Manifest:
        """Write these weights as an artifact under ``manifest`` (see ``save_artifact``)."""
        return save_artifact(out_dir, self.module, manifest, extra_files=extra_files)

    @property
    def input_dim(self) -> int:
        """Width of an encoded row."""
        return self.manifest.architecture.input_dim

    def encode(self, records: Sequence[Any]) -> torch.Tensor:
        """Validate and encode untrusted records (raises InputValidationError)."""
        return encode_records(self.manifest, records)

    @torch.inference_mode()
    def forward_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities for an encoded batch, returned on the CPU."""
        run = self.plan or self.module
        logits = run(x.to(self.device, non_blocking=True))
        return torch.softmax(logits.float(), dim=-1).to("cpu")

    def decide(
        self,
        records: Sequence[Mapping[str, Any]],
        x: torch.Tensor,
        probs: torch.Tensor,
        uniforms: torch.Tensor | None = None,
    ) -> list[Prediction]:
        """Turn probabilities into labelled predictions, applying post-processing if any.

        ``uniforms`` are the randomized thresholds' draws, one per record; serving passes keyed
        draws (:func:`~inference.postprocess.keyed_uniform`). None draws from the encoded rows,
        which is for offline evaluation only.
        """
        labels = self.manifest.labels
        post = self.manifest.postprocessing
        if post is None:
            # One tolist() and plain Python: tensor ops on a handful of rows cost more in
            # dispatch than they compute (this runs once per request on the hot path).
            out = []
            for row in probs.tolist():
                best = max(range(len(row)), key=row.__getitem__)
                out.append(Prediction(labels[best], dict(zip(labels, row, strict=True))))
            return out
        pos = int(post.get("positive_label", 1))
        draws = row_uniforms(x) if uniforms is None else uniforms
        prob_pos, is_pos = apply_group_threshold(
            post, probs[:, pos], raw_values(records, post["feature"]), draws
        )
        out = []
        for p, positive in zip(prob_pos.tolist(), is_pos.tolist(), strict=True):
            label = labels[pos] if positive else labels[1 - pos]
            out.append(Prediction(label, {labels[pos]: p, labels[1 - pos]: 1.0 - p}))
        return out

    def predict(self, records: Sequence[Any]) -> list[Prediction]:
        """Validate, encode and predict in one forward pass (no batching across callers)."""
        x = self.encode(records)
        return self.decide(records, x, self.forward_probabilities(x))
